// The "Exportieren" control of the lists (authority inbox, operator's applications): format and CRS, downloaded
// from GET /api/v1/exports/{cases|applications} with the list's filters (docs/api.md#exports).
import { download } from "./api.js";
import { h, field } from "./dom.js";
import { t } from "./i18n.js";
import { say, problemText } from "./state.js";

const FORMATS = ["gpkg", "shp", "csv", "geojson"];
// "" = the server's default: the tenant's metric CRS for GeoPackage and Shapefile, CRS84 for CSV and GeoJSON
const CRSS = ["", "EPSG:25832", "EPSG:25833", "CRS84", "EPSG:3857"];

/** kind: "cases" | "applications"; filters: URLSearchParams of the list (status, overdue, …) without paging. */
export function exportForm(kind, filters) {
  const format = h("select", { name: "export_format", id: `export-format-${kind}` },
    FORMATS.map((f) => h("option", { value: f }, t(`exp.fmt.${f}`))));
  const crs = h("select", { name: "export_crs", id: `export-crs-${kind}` },
    CRSS.map((c) => h("option", { value: c }, t(`exp.crs.${c || "default"}`))));
  const button = h("button", { type: "submit", id: `export-${kind}` }, t("exp.button"));
  const form = h("form.filters.export", { "aria-label": t("exp.title"), onsubmit: async (e) => {
    e.preventDefault();
    const qs = new URLSearchParams(filters);
    qs.delete("limit");
    qs.set("format", format.value);
    if (crs.value) qs.set("crs", crs.value);
    button.disabled = true;
    try {
      const name = await download(`/api/v1/exports/${kind}?${qs}`);
      say(`${t("exp.done")} ${name}`, "ok");
    } catch (err) { say(problemText(err), "error"); }
    button.disabled = false;
  } }, field(t("exp.format"), format), field(t("exp.crs.label"), crs), button);
  return form;
}
