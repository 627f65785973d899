import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

// The BFF host (apps/bff) serves `dist/` at http://localhost:3000. For `vite dev`, the dev server
// forwards the BFF's routes there so the SPA still only ever talks to its own origin.
const forward = { target: 'http://localhost:3000', changeOrigin: false, ws: true };

export default defineConfig({
  base: '/',
  plugins: [react()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // No inline scripts or data: URLs: the BFF host sends `script-src 'self'`.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    sourcemap: true,
  },
  server: {
    port: 5173,
    strictPort: true,
    proxy: { '/bff': forward, '/api': forward, '/local': forward },
  },
});
