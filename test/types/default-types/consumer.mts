// A consumer project as TypeScript 6+ sets one up: no "types" field (so no
// @types package is loaded unless something asks for it), no skipLibCheck.
// The library's declarations name Node's types (Buffer, NodeJS.Signals,
// Symbol.dispose), so they must pull @types/node in themselves.
import * as mp from 'multiproc';

const v = mp.Value('i', 1);
const n: number = v.value;
const q = new mp.Queue<Buffer>();
export async function first(): Promise<number> {
  await using pool = new mp.Pool({ processes: 1 });
  const [x] = await pool.map({ module: import.meta.url, export: 'twice' }, [n]);
  return x as number + (await q.get()).length;
}
export function twice(x: number): number {
  return 2 * x;
}
