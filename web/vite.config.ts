// Vite build of the dashboard: plain TypeScript, no framework. Everything (Leaflet,
// uPlot, their CSS and images) is bundled into dist/ with content-hashed names, so the
// server can cache /assets/* forever and nothing is fetched from the internet at run time.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  base: '/',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    assetsInlineLimit: 8192,
    sourcemap: false,
    chunkSizeWarningLimit: 600,
    // hex content hashes (assets/index-0a1b2c3d.js): tsi serve recognises a hashed name
    // by a run of 8+ letters and digits and sends those with a one-year immutable cache.
    rollupOptions: { output: { hashCharacters: 'hex' } },
  },
  server: {
    // `npm run dev` proxies the API to a local `tsi serve`.
    proxy: { '/api': 'http://127.0.0.1:8080', '/health': 'http://127.0.0.1:8080' },
  },
  test: {
    include: ['test/**/*.test.ts'],
    environment: 'node',
  },
});
