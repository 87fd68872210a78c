// ${VAR} and ${VAR:-default} in config values, resolved from the environment; as in the shell,
// an empty variable counts as unset.
// Substitution happens inside parsed YAML scalars, so a value from the environment can never
// change the structure of the file (a password with ": " or "#" stays one string), and every
// error still points at the line it came from. "$${" is a literal "${".
const REF = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

export interface EnvResult {
  value: string;
  missing: string[];
}

export function substituteEnv(text: string, env: NodeJS.ProcessEnv): EnvResult {
  const missing: string[] = [];
  const value = text.replace(REF, (whole, name: string | undefined, fallback: string | undefined) => {
    if (whole === '$${') return '${';
    const found = env[name!];
    if (found !== undefined && found !== '') return found;
    if (fallback !== undefined) return fallback;
    missing.push(name!);
    return '';
  });
  return { value, missing };
}
