// Self-test of sqlcheck: proves the grammars accept real HiveQL / Spark SQL and
// really reject garbage. Run: node tools/sqlcheck/selftest.mjs  (exit 0 = pass)
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const CHECK = path.join(HERE, 'check.mjs');
let failures = 0;
let passes = 0;

function expect(name, cond, detail) {
  if (cond) passes++;
  else {
    failures++;
    console.error(`FAIL ${name}${detail ? `: ${detail}` : ''}`);
  }
}

function run(args, input) {
  return spawnSync(process.execPath, [CHECK, ...args], { input, encoding: 'utf8' });
}

const CREATE = `CREATE TABLE IF NOT EXISTS fed.scores (
  id STRING COMMENT 'sample id; hashed',
  score DOUBLE
) PARTITIONED BY (dt STRING) STORED AS ORC`;
const INSERT = `INSERT OVERWRITE TABLE fed.scores PARTITION (dt='2026-01-01')
SELECT s.id, 1.0 / (1.0 + exp(-s.wx)) AS score FROM fed.wx s WHERE s.dt = '2026-01-01'`;
const GARBAGE = 'SELECT FROM WHERE';

// 1. JSON batch mode, both dialects, one process.
const batch = [
  { dialect: 'hive', sql: CREATE },
  { dialect: 'hive', sql: INSERT },
  { dialect: 'hive', sql: GARBAGE },
  { dialect: 'spark', sql: INSERT },
  { dialect: 'spark', sql: GARBAGE },
  { dialect: 'spark', sql: 'SELEC id FROM t' },
  { dialect: 'hive', sql: `${CREATE};\n${INSERT};\n${GARBAGE};` },
];
const r = run(['--json'], JSON.stringify(batch));
let out = null;
try {
  out = JSON.parse(r.stdout);
} catch {
  expect('json output parses', false, `stdout=${r.stdout} stderr=${r.stderr}`);
}
if (out) {
  expect('json length', out.length === batch.length, `${out.length}`);
  expect('hive CREATE ... PARTITIONED BY ... STORED AS ORC valid', out[0].ok, JSON.stringify(out[0].errors));
  expect('hive INSERT OVERWRITE ... PARTITION valid', out[1].ok, JSON.stringify(out[1].errors));
  expect('hive rejects SELECT FROM WHERE', !out[2].ok && out[2].errors.length > 0);
  expect('spark INSERT OVERWRITE ... PARTITION valid', out[3].ok, JSON.stringify(out[3].errors));
  expect('spark rejects SELECT FROM WHERE', !out[4].ok && out[4].errors.length > 0);
  expect('spark rejects SELEC', !out[5].ok);
  const multi = out[6];
  expect('multi-statement count', multi.statements === 3, `${multi.statements}`);
  expect(
    'multi-statement error is statement 3 on line 7',
    !multi.ok && multi.errors.every((e) => e.statement === 3) && multi.errors[0].line === 7,
    JSON.stringify(multi.errors),
  );
  expect('json mode exit 1 when something is invalid', r.status === 1, `${r.status}`);
}

// 2. File mode with many statements; exit 0 when all valid, 1 otherwise.
const dir = mkdtempSync(path.join(tmpdir(), 'sqlcheck-'));
try {
  const good = path.join(dir, 'good.hql');
  const bad = path.join(dir, 'bad.hql');
  writeFileSync(good, `-- setup; comment with semicolon\n${CREATE};\n\n${INSERT};\n`);
  writeFileSync(bad, `${CREATE};\n${GARBAGE};\n`);
  const g = run(['--dialect', 'hive', '-q', good]);
  expect('file mode valid exits 0', g.status === 0, `status=${g.status} ${g.stdout}${g.stderr}`);
  const b = run(['--dialect', 'hive', '-q', bad]);
  expect('file mode invalid exits 1', b.status === 1, `status=${b.status}`);
  expect('file mode reports statement 2 line 5', /:5:\d+: statement 2 /.test(b.stdout), b.stdout);
  const s = run(['--dialect', 'spark', '-q', '-'], 'SELECT id, count(*) FROM t GROUP BY id');
  expect('stdin text mode valid', s.status === 0, `status=${s.status} ${s.stdout}${s.stderr}`);
  const u = run(['--dialect', 'oracle', good]);
  expect('unknown dialect exits 2', u.status === 2, `status=${u.status}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}

console.log(`sqlcheck selftest: ${passes} passed, ${failures} failed`);
process.exitCode = failures === 0 ? 0 : 1;
