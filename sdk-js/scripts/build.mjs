// Builds the package: the wasm engine (cargo, wasm-bindgen, wasm-opt) and the
// TypeScript sources. Run from sdk-js/: `node scripts/build.mjs [--skip-wasm]`.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, rmSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const sdk = join(dirname(fileURLToPath(import.meta.url)), '..');
const root = join(sdk, '..');
const run = (cmd, args, env = {}) => execFileSync(cmd, args, { stdio: 'inherit', cwd: root, env: { ...process.env, ...env } });
const gen = join(sdk, 'src', 'wasm');

if (!process.argv.includes('--skip-wasm') || !existsSync(join(gen, 'keylink_bg.wasm'))) {
  const targetDir = join(root, 'target', 'wasm-bindgen');
  run('cargo', ['build', '-p', 'keylink-wasm', '--target', 'wasm32-unknown-unknown', '--release', '--target-dir', targetDir], {
    RUSTFLAGS: '-C target-feature=+simd128',
    CARGO_PROFILE_RELEASE_LTO: 'fat',
    CARGO_PROFILE_RELEASE_CODEGEN_UNITS: '1',
  });
  rmSync(gen, { recursive: true, force: true });
  run('wasm-bindgen', ['--target', 'web', '--out-name', 'keylink', '--out-dir', gen,
    join(targetDir, 'wasm32-unknown-unknown', 'release', 'keylink_wasm.wasm')]);
  const wasm = join(gen, 'keylink_bg.wasm');
  run(join(sdk, 'node_modules', '.bin', 'wasm-opt'), ['-O3', '--enable-simd', '--enable-bulk-memory', '--enable-nontrapping-float-to-int',
    '--enable-sign-ext', '--enable-mutable-globals', '--enable-reference-types', '--enable-multivalue', wasm, '-o', wasm]);
}
rmSync(join(sdk, 'dist'), { recursive: true, force: true });
run(join(sdk, 'node_modules', '.bin', 'tsc'), ['-p', join(sdk, 'tsconfig.json')]);
mkdirSync(join(sdk, 'dist', 'wasm'), { recursive: true });
for (const f of ['keylink.js', 'keylink.d.ts', 'keylink_bg.wasm']) cpSync(join(gen, f), join(sdk, 'dist', 'wasm', f));
console.log('built sdk-js/dist');
