// The TypeScript types of the job file (src/jobfile.ts) are kept in step with
// the Rust config model: every key the Rust parser accepts is a property of
// the TS types and vice versa, every enum value the parser accepts is a
// literal of the TS types, and the shared vector job files type-check.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { ROOT, SDK, VECTORS, tmp } from './helpers.mjs';

const rustSources = ['parse.rs', 'parse/sections.rs'].map((f) => readFileSync(join(ROOT, 'core', 'src', 'config', f), 'utf8')).join('\n');

/** Keys the Rust parser accepts: every slice of string literals (`&["a", "b"]`). */
function rustKeys() {
  const keys = new Set();
  for (const m of rustSources.matchAll(/&\[((?:\s*"[a-z0-9_]+"\s*,?)+)\s*\]/g)) {
    for (const k of m[1].matchAll(/"([a-z0-9_]+)"/g)) keys.add(k[1]);
  }
  return keys;
}

/** Enum values the Rust parser accepts: `("value", Type::Variant)` in choice tables. */
function rustChoices() {
  return new Set([...rustSources.matchAll(/\("([^"]+)",\s*[A-Z]\w*::\w+\)/g)].map((m) => m[1]));
}

/** Property names and string literal types of src/jobfile.ts. */
function tsModel() {
  const file = join(SDK, 'src', 'jobfile.ts');
  const sf = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022, true);
  const keys = new Set(), literals = new Set();
  const visit = (n) => {
    if ((ts.isPropertySignature(n)) && n.name && ts.isIdentifier(n.name)) keys.add(n.name.text);
    if (ts.isLiteralTypeNode(n) && ts.isStringLiteral(n.literal)) literals.add(n.literal.text);
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return { keys, literals };
}

test('every job-file key of the Rust parser is in the TS types, and no other', () => {
  const rust = rustKeys();
  const { keys } = tsModel();
  assert.ok(rust.size > 40, `found ${rust.size} keys in the Rust parser`);
  assert.deepEqual([...rust].filter((k) => !keys.has(k)).sort(), [], 'keys missing from src/jobfile.ts');
  assert.deepEqual([...keys].filter((k) => !rust.has(k)).sort(), [], 'keys in src/jobfile.ts the Rust parser does not accept');
});

test('every enum value of the Rust parser is a literal of the TS types', () => {
  const choices = rustChoices();
  const { literals } = tsModel();
  assert.ok(choices.size > 10);
  assert.deepEqual([...choices].filter((c) => !literals.has(c)).sort(), []);
});

/** Type-checks `const job: TYPE = <json>` for each case; returns the diagnostics per case. */
function typeCheck(cases) {
  const dir = tmp('keylink-types-');
  const files = cases.map(([type, json], i) => {
    const f = join(dir, `case${i}.ts`);
    writeFileSync(f, `import type { ${type} } from ${JSON.stringify(join(SDK, 'dist', 'index.js'))};\nexport const job: ${type} = ${json};\n`);
    return f;
  });
  const program = ts.createProgram(files, { strict: true, noEmit: true, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, target: ts.ScriptTarget.ES2022, skipLibCheck: true, types: [] });
  return files.map((f) => ts.getPreEmitDiagnostics(program, program.getSourceFile(f)).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n')));
}

test('the shared vector job files type-check (snake_case as JobFile, camelCase as JobFileCamel); a wrong one does not', () => {
  const names = readdirSync(join(VECTORS, 'jobs')).filter((n) => n.endsWith('.json'));
  const cases = names.map((n) => [n.includes('camel') ? 'JobFileCamel' : 'JobFile', readFileSync(join(VECTORS, 'jobs', n), 'utf8')]);
  cases.push(['JobFile', JSON.stringify({ source_data: { file_name: 'x' }, encryption: { timestamp_config: { field: 't', format: 'iso8601' }, cipher: 'aes-128' } })]);
  cases.push(['JobFile', JSON.stringify({ source_data: { file_name: 'x' }, encryption: { timestamp_config: { field: 't', format: 'iso8601' } }, unknown_key: 1 })]);
  const diags = typeCheck(cases);
  names.forEach((n, i) => assert.deepEqual(diags[i], [], n));
  assert.ok(diags[names.length].length > 0, 'a bad cipher must not type-check');
  assert.ok(diags[names.length + 1].length > 0, 'an unknown key must not type-check');
});
