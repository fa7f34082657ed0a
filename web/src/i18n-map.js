// Texts of the map's search box and external base layers (merged into i18n.js's dictionaries).
export const de = {
  msearch: {
    label: "Karte durchsuchen", placeholder: "Ort, Straße, L 3262, Aktenzeichen oder Koordinaten",
    button: "Suchen", none: "Nichts gefunden.", failed: "Die Suche ist fehlgeschlagen.", open: "Öffnen",
    results: "Suchergebnisse",
    kinds: { gemeinde: "Gemeinde", kreis: "Kreis", street: "Straße", road: "Straße", application: "Antrag",
      case: "Vorgang", coordinates: "Koordinaten" },
    classes: { autobahn: "Autobahn", bund: "Bundesstraße", land: "Landesstraße", kreis: "Kreisstraße",
      gemeinde: "Gemeindestraße" },
    outside: "außerhalb der Gemeinden des Landes",
  },
  baseLayers: { title: "Hintergrundkarten", none: "Eigene Karte" },
  problem: {
    "search-query-empty": "Bitte einen Suchbegriff eingeben.",
    "search-query-too-long": "Der Suchbegriff ist zu lang (höchstens 100 Zeichen).",
    "search-query-invalid": "Der Suchbegriff enthält Steuerzeichen.",
    "invalid-coordinates": "Das sind keine gültigen Koordinaten: Länge, Breite in Grad (z. B. 8.681, 50.050) oder Ostwert Nordwert in Metern (EPSG:25832, z. B. 478123 5545123).",
  },
};
export const en = {
  msearch: {
    label: "Search the map", placeholder: "Place, street, L 3262, reference or coordinates",
    button: "Search", none: "Nothing found.", failed: "The search failed.", open: "Open",
    results: "Search results",
    kinds: { gemeinde: "Municipality", kreis: "District", street: "Street", road: "Road", application: "Application",
      case: "Case", coordinates: "Coordinates" },
    classes: { autobahn: "Motorway", bund: "Federal road", land: "State road", kreis: "District road",
      gemeinde: "Municipal road" },
    outside: "outside the state's municipalities",
  },
  baseLayers: { title: "Base maps", none: "Own map" },
};
