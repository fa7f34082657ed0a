"""The applicant's side: drafts, attachments, the route's sections, submission, supplements, withdrawal."""
