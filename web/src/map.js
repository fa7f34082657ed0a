// MapLibre map on our own style and tiles (no external URLs). The style's tile URLs carry the configured public base
// URL; requests to /tiles and /styles are sent to the origin this page came from, where the session cookie goes
// with them (same-origin requests carry it; no Authorization header is needed or set).
import * as maplibregl from "maplibre-gl";
import "maplibre-gl/dist/maplibre-gl.css";
import workerUrl from "maplibre-gl/dist/maplibre-gl-worker.mjs?url";
import { get } from "./api.js";
import { t } from "./i18n.js";
import { addBaseLayers, addMapSearch } from "./mapsearch.js";

maplibregl.setWorkerUrl(new URL(workerUrl, location.href).href); // the bundled worker, served from /assets

function local(url) {
  const u = new URL(url, location.href);
  if (!/^\/(tiles|styles)\//.test(u.pathname)) return null;
  return location.origin + u.pathname + u.search;
}

export async function createMap(container, { label } = {}) {
  const style = await get("/styles/breitband.json");
  const map = new maplibregl.Map({
    container, style, attributionControl: false, dragRotate: false, pitchWithRotate: false,
    transformRequest: (url) => {
      const rewritten = local(url);
      return rewritten ? { url: rewritten, credentials: "same-origin" } : { url };
    },
  });
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }), "top-right");
  map.addControl(new maplibregl.ScaleControl({ unit: "metric" }), "bottom-left");
  map.addControl(new maplibregl.AttributionControl({ compact: false }), "bottom-right");
  map.getCanvas().setAttribute("aria-label", label || t("map"));
  window.breitbandMap = map; // for the browser tests (queryRenderedFeatures)
  await new Promise((resolve) => (map.loaded() ? resolve() : map.once("load", resolve)));
  addMapSearch(map);
  await addBaseLayers(map);
  return map;
}

/** Show a GeoJSON FeatureCollection as a line/point/area layer; properties.highlight chooses colour and width. */
export function showGeoJSON(map, id, fc) {
  const src = map.getSource(id);
  if (src) { src.setData(fc); return; }
  map.addSource(id, { type: "geojson", data: fc });
  const colour = ["case", ["==", ["get", "highlight"], true], "#c2185b", ["==", ["get", "highlight"], "other"], "#1f5fa8", "#8c8c8c"];
  map.addLayer({ id: `${id}-line`, type: "line", source: id, filter: ["==", ["geometry-type"], "LineString"],
    layout: { "line-cap": "round", "line-join": "round" },
    paint: { "line-color": colour, "line-width": ["case", ["==", ["get", "highlight"], true], 6, 4],
      "line-dasharray": ["case", ["==", ["get", "highlight"], false], ["literal", [2, 1.5]], ["literal", [1, 0]]] } });
  map.addLayer({ id: `${id}-point`, type: "circle", source: id, filter: ["==", ["geometry-type"], "Point"],
    paint: { "circle-color": colour, "circle-radius": 5, "circle-stroke-color": "#fff", "circle-stroke-width": 1 } });
}

export function bboxOf(fcs) {
  let b = [Infinity, Infinity, -Infinity, -Infinity];
  const walk = (c) => {
    if (typeof c[0] === "number") { b = [Math.min(b[0], c[0]), Math.min(b[1], c[1]), Math.max(b[2], c[0]), Math.max(b[3], c[1])]; return; }
    c.forEach(walk);
  };
  for (const fc of fcs) for (const f of fc.features || []) if (f.geometry) walk(f.geometry.coordinates);
  return Number.isFinite(b[0]) ? b : null;
}

export function fit(map, fcs) {
  const b = bboxOf(fcs);
  if (b) map.fitBounds([[b[0], b[1]], [b[2], b[3]]], { padding: 60, maxZoom: 16, duration: 0 });
}

/** The resolution's pieces as features: highlight=true for the given authority, "other" for other authorities,
 * false for pieces outside public roads or in private roads. */
export function resolutionFeatures(resolution, ownAuthorityId) {
  const features = [];
  for (const a of resolution?.authorities || [])
    for (const p of a.pieces || [])
      features.push({ type: "Feature", geometry: p.geometry,
        properties: { authority: a.name, authority_id: a.id, highlight: ownAuthorityId ? (a.id === ownAuthorityId ? true : false) : "other" } });
  for (const k of ["outside_public_roads", "private_roads"])
    for (const p of resolution?.[k]?.pieces || [])
      features.push({ type: "Feature", geometry: p.geometry, properties: { authority: null, highlight: false } });
  return { type: "FeatureCollection", features };
}
