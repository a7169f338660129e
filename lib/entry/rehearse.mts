/**
 * An ES module with nothing in it, imported (under a fresh query string) by
 * warmUp() in the zygote and in each forkserver spare, so that the ESM
 * loader's code paths have run in a child before its first real import().
 */
export default function rehearse(): number {
  return 1;
}
