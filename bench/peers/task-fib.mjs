// CPU-bound task for the pool speed-up benchmark: naive Fibonacci.
export default function fib(n) {
  return n < 2 ? n : fib(n - 1) + fib(n - 2);
}
