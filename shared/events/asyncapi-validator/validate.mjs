// Validates every AsyncAPI document in ../asyncapi (or the directory given) with the reference
// parser. Prints each diagnostic; exits 1 on any error diagnostic, or if there is nothing to check.
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { Parser, DiagnosticSeverity } from '@asyncapi/parser';

const dir = `${process.argv[2] ?? fileURLToPath(new URL('../asyncapi', import.meta.url))}/`;
const files = (await readdir(dir)).filter((name) => name.endsWith('.json')).sort();
const parser = new Parser();
let errors = 0;

if (files.length === 0) {
  console.error(`no AsyncAPI documents in ${dir}`);
  process.exit(1);
}
for (const name of files) {
  const source = `${dir}${name}`;
  const { document, diagnostics } = await parser.parse(await readFile(source, 'utf8'), { source });
  const failed = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
  errors += failed.length + (document ? 0 : 1);
  for (const d of diagnostics) {
    const level = DiagnosticSeverity[d.severity].toLowerCase();
    console.log(`${name}: ${level} ${d.code} at /${d.path.join('/')}: ${d.message}`);
  }
  const ok = failed.length === 0 && document;
  console.log(`${name}: ${ok ? 'valid' : 'INVALID'} (${diagnostics.length} diagnostics)`);
}
console.log(`${files.length} documents, ${errors} errors`);
process.exit(errors ? 1 : 0);
