/**
 * A full garbage collection on demand, for the one moment a daemon knows it has just made a lot
 * of garbage: the PRR after loading a million bindings (config parse, store rows) holds several
 * hundred MB of dead objects, and V8, with no allocation pressure afterwards, keeps them (and
 * the pages) until some later GC; RSS then stays at the load's peak for as long as it runs.
 *
 * `gc` is exposed at run time (the documented V8 flag, set once) and taken from a fresh vm
 * context, so the daemons need no command-line flag.
 */
import v8 from 'node:v8';
import vm from 'node:vm';

let gc: (() => void) | undefined;

/** Collect now; false when the runtime refused (then nothing happened). */
export function collectGarbage(): boolean {
  try {
    if (gc === undefined) {
      v8.setFlagsFromString('--expose-gc');
      gc = vm.runInNewContext('gc') as typeof gc;
    }
    gc!();
    gc!(); // the second one compacts what the first freed: V8 then gives the pages back
    return true;
  } catch {
    return false;
  }
}
