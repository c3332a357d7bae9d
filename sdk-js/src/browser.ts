/**
 * keylink for browsers: run jobs on `File`s and `Blob`s picked by the user,
 * keys in IndexedDB, outputs to `WritableStream`s. No data leaves the page.
 * The engine is fetched from `keylink_bg.wasm` next to this module on first
 * use (or call {@link initKeylink} with another location).
 * @packageDocumentation
 */
export * from './index.js';
