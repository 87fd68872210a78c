/** "1 session", "2 sessions", "1 policy", "3 policies". */
export function plural(n: number, one: string, many = one.endsWith('y') ? `${one.slice(0, -1)}ies` : `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}
