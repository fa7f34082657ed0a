// Build of the web app served by the API at / (breitband/web.py). `npm ci && npm run build` → web/dist.
import { defineConfig } from "vite";

export default defineConfig({
  base: "/",
  build: { outDir: "dist", emptyOutDir: true, sourcemap: false, chunkSizeWarningLimit: 2000 },
  server: { proxy: { "/api": "http://127.0.0.1:8000", "/tiles": "http://127.0.0.1:8000", "/styles": "http://127.0.0.1:8000" } },
});
