import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// The built page ships inside the Python package: `taskcell serve` serves
// dist/index.html at `/` and dist/assets/* at `/assets/*`.
// Relative to this folder (vite's root).
const outDir = "../src/taskcell/web/dist";

export default defineConfig({
  base: "/",
  plugins: [react()],
  build: {
    outDir,
    emptyOutDir: true,
    sourcemap: false,
  },
  server: {
    port: 5173,
    proxy: {
      "/api": { target: "http://127.0.0.1:8000", changeOrigin: false },
    },
  },
});
