import { defineConfig } from "vite";

/**
 * The admin console's build: console/src → console/dist, served by api-cms at /console
 * (mixins/gateway/console.ts). Every file lands beside the page, so the gateway serves one flat
 * folder; nothing is inlined into the page, so its CSP needs no 'unsafe-inline'.
 */
export default defineConfig({
	root: import.meta.dirname,
	base: "/console/",
	oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
	build: {
		outDir: "dist",
		emptyOutDir: true,
		assetsDir: "",
		// Images become files, never data: URLs (the CSP allows this origin's images only).
		assetsInlineLimit: 0,
		// The page loads one script: no preload helper, which would be inlined.
		modulePreload: false,
		reportCompressedSize: false
	}
});
