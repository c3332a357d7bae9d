/**
 * Loading the wasm engine. The engine must be initialised once per realm
 * before a job runs: the Node and browser entry points do it on first use;
 * elsewhere (edge runtimes, bundles) call {@link initKeylink} with the wasm
 * bytes, a compiled `WebAssembly.Module`, a `Response` or a URL.
 * @packageDocumentation
 */
import initWasm, * as engine from './wasm/keylink.js';
import { KeylinkError } from './errors.js';

/** What the engine can be loaded from. */
export type WasmSource = BufferSource | WebAssembly.Module | URL | string | Response | Promise<Response>;

let ready: Promise<void> | undefined;
let loaded = false;

/**
 * Initialises the wasm engine (once; later calls return the first call's promise).
 * @param source - the engine (`keylink_bg.wasm`) as bytes, module, URL or response;
 *   default: the file next to the package's JS, fetched by URL (browsers)
 */
export function initKeylink(source?: WasmSource): Promise<void> {
  if (!ready) {
    ready = (source === undefined ? initWasm() : initWasm({ module_or_path: source as never })).then(() => {
      loaded = true;
    });
    ready.catch(() => {
      ready = undefined;
    });
  }
  return ready;
}

/** True once the engine is initialised. */
export function isKeylinkReady(): boolean {
  return loaded;
}

/** @internal The engine's bindings, checked to be initialised. */
export function engineOrThrow(): typeof engine {
  if (!loaded) {
    throw new KeylinkError('WASM_NOT_INITIALISED', 'the keylink engine is not initialised: call initKeylink(wasm) first');
  }
  return engine;
}
