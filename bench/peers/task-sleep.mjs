// A child that waits until it is killed (bench/pool-shutdown.mjs).
export default async function sleepForever() {
  await new Promise((r) => setTimeout(r, 1e9));
}
