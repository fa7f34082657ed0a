// The API documentation at /docs (breitband/web.py): Swagger UI over /openapi.json, from our own assets.
import SwaggerUIBundle from "swagger-ui-dist/swagger-ui-bundle.js";
import "swagger-ui-dist/swagger-ui.css";

window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
  // no validator badge: it would send the API definition to validator.swagger.io
  validatorUrl: null,
});
