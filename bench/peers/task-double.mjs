// Worker task for the thread-pool peers that take a module with a default export (piscina, tinypool).
export default function double(x) {
  return x * 2;
}
