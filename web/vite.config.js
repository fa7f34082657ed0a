// Build of the web app served by the API at / (breitband/web.py). `npm ci && npm run build` → web/dist.
// Two pages: the app (index.html) and the API documentation at /docs (docs.html: Swagger UI from swagger-ui-dist).
import { resolve } from "node:path";
import { defineConfig } from "vite";

export default defineConfig({
  base: "/",
  build: { outDir: "dist", emptyOutDir: true, sourcemap: false, chunkSizeWarningLimit: 2000,
           rollupOptions: { input: { main: resolve(import.meta.dirname, "index.html"),
                                     docs: resolve(import.meta.dirname, "docs.html") } } },
  server: { proxy: { "/api": "http://127.0.0.1:8000", "/tiles": "http://127.0.0.1:8000", "/styles": "http://127.0.0.1:8000" } },
});
