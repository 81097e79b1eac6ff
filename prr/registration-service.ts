/**
 * The registration commands as the PRR runs them (provisioning/protocol.ts has the shapes):
 * allocation from the shared pools, the durable store, and the running binding table.
 *
 * A registration is, in this order, all synchronous (so two registrations never interleave on the
 * event loop, and two racing for the last set cannot both win):
 *   1. the port set: the key's stored one (sticky), else a new one from the PortAllocator;
 *   2. the row is written and COMMITted (prr/store.ts, synchronous = FULL);
 *   3. the binding goes into the BindingTable (traffic flows);
 *   4. the reply is built. A failure at 2 or 3 undoes the earlier steps and nothing is answered
 *      but an error line.
 *
 * Set sizes. The pool is cut into slots of `defaultPorts` contiguous ports (common/allocator.ts):
 * a request for that size takes the first free slot. With a PSID policy ([registration]
 * psid_length) the slots are the RFC 7597 PSID sets of that length instead, and any request up to
 * one PSID set's size takes one. Any other size (`--ports N`, a key's
 * `ports=N`) or a key's fixed `set=` is placed by a first-fit scan of the pool addresses, aligned
 * to its size; that scan is linear in the pool, so keep odd sizes for a few keys.
 *
 * Leases (expire(), run every minute by registration-start.ts): when a lease ends the binding
 * leaves the table (no traffic) but the row and the set stay with the key, so a late renew or
 * register gets the same set back. A key no longer in authorized_keys loses its set and row when
 * its lease ends.
 *
 * Bindings made outside registration after start (control socket `bind`, a SIGHUP reload) are
 * not known to the allocator: a set found taken in the table is set aside and the next is tried.
 */
import { PortAllocator } from '../common/allocator.js';
import { PoolExhaustedError, PortSetError } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import { FIRST_USER_PORT, MAX_PORT, parsePortSet, PortRange, PsidSet, type PortSet } from '../common/portset.js';
import { ipv4ToString } from '../common/codec/ipv4.js';
import { ipv6ToString, parseIpv6OrThrow } from '../common/codec/ipv6.js';
import {
  EXIT_EXHAUSTED, EXIT_INTERNAL, EXIT_REFUSED, ProtocolError,
  type LeaseReply, type Peer, type RegisterRequest, type RegistrationService, type ReleaseReply,
} from '../provisioning/protocol.js';
import type { BindingInput, BindingTable } from './bindings.js';
import type { KeyEntry } from './registration-keys.js';
import { LOAD_REC, setOfRecord, type RegistrationStore, type StoredBinding } from './store.js';

/** Entries of the start's cache of port sets (a prime: set numbers are far from random). */
const SET_CACHE = 4093;

export interface RegistrationPolicy {
  minPorts: number;
  maxPorts: number;
  defaultPorts: number;
  leaseSeconds: number;
  /** The IPv4 MTU inside the tunnel (the reply's mtu). */
  tunnelMtu: number;
  /** The BR address the CPEs tunnel to (index 0 of the PRR's tunnel_ipv6). */
  prrIpv6: Buffer;
  /** Allow ports 0-1023 in sets. */
  allowSystemPorts: boolean;
  /** Hand out RFC 7597 PSID sets (length k, offset a) instead of ranges of defaultPorts. */
  psid?: { k: number; a: number };
}

export interface RegistrarDeps {
  table: BindingTable;
  store: RegistrationStore;
  /** Every address of the shared pools. */
  poolAddresses: number[];
  /** Authorized keys by fingerprint (may be replaced on reload). */
  keys: () => Map<string, KeyEntry>;
  policy: RegistrationPolicy;
  log: Logger;
  /** Unix seconds (replaced in tests). */
  now?: () => number;
}

export class Registrar implements RegistrationService {
  readonly allocator: PortAllocator;
  /** Ports in one slot of the allocator: default_ports, or the size of one PSID set. */
  private readonly slotSize: number;
  private readonly d: RegistrarDeps;
  private readonly addrs: number[];
  private readonly now: () => number;
  /** Registered bindings in the table (kept as a count: a map by key would cost 100 MB at a million). */
  private live = 0;

  constructor(d: RegistrarDeps) {
    this.d = d;
    this.now = d.now ?? (() => Math.floor(Date.now() / 1000));
    this.addrs = [...d.poolAddresses].sort((a, b) => a - b);
    const minPort = d.policy.allowSystemPorts ? 0 : FIRST_USER_PORT;
    const psid = d.policy.psid;
    this.allocator = new PortAllocator(this.addrs, psid !== undefined ? { kind: 'psid', k: psid.k, a: psid.a, minPort } : { kind: 'range', size: d.policy.defaultPorts, minPort });
    this.slotSize = this.allocator.slotSet(0).size;
  }

  /**
   * Reserve every binding already in the table (static ones), then load the store's rows into the
   * allocator and the table. Rows that clash with a static binding are logged and left out of the
   * table (their row stays: an operator decides). Returns how many were loaded.
   */
  start(): { loaded: number; skipped: number } {
    const t = this.d.table;
    for (const id of t.ids()) {
      const ipv4 = t.ipv4Of(id);
      if (this.allocator.contains(ipv4)) this.allocator.reserve(ipv4, t.portsOf(id)!);
    }
    let loaded = 0;
    let skipped = 0;
    const notRestored = (name: string, why: string): void => {
      skipped++;
      this.d.log.error(`${this.d.store.file}: registration of ${name} not restored: ${why}`);
    };
    t.ensureCapacity(t.idLimit + this.d.store.count()); // one allocation, no regrowth or rehash per doubling
    t.beginBulk(); // the IPv6 and name indexes built at the end, in slot order
    try {
      loaded = this.loadRows(notRestored);
    } finally {
      t.endBulk();
    }
    return { loaded, skipped };
  }

  /** The store's rows into the allocator and the table (start); returns how many went in. */
  private loadRows(notRestored: (name: string, why: string) => void): number {
    let loaded = 0;
    const t = this.d.table;
    // A million rows hold a few thousand distinct sets at most: make each PortSet once, and let
    // the bindings share them (immutable). A direct-mapped cache by set number and kind, in typed
    // arrays: a Map keyed by a number above 2^31 boxes it, a million times.
    const cacheWord = new Uint32Array(SET_CACHE);
    const cacheKind = new Uint8Array(SET_CACHE); // 0: empty
    const cacheSet: PortSet[] = [];
    const ipv6 = Buffer.alloc(16); // the table copies the address in
    // One input, rewritten per row: no object per binding (addNamed reads the name from the block).
    const input: BindingInput = { subscriber: '', ipv6, ipv4: 0, ports: new PortRange(0, 0, { allowSystemPorts: true }) };
    for (const block of this.d.store.loadBlocks()) {
      const { recs, names, nameAt } = block;
      for (let i = 0, o = 0; i < block.n; i++, o += LOAD_REC) {
        for (let j = 0; j < 16; j++) ipv6[j] = recs[o + j]!;
        const ipv4 = recs.readUInt32BE(o + 16);
        const word = recs.readUInt32BE(o + 20);
        const kind = recs[o + 24]!;
        const slot = (Math.imul(word ^ kind, 0x9e3779b1) >>> 0) % SET_CACHE;
        let set = cacheKind[slot] === kind && cacheWord[slot] === word ? cacheSet[slot] : undefined;
        let reserved = false;
        try {
          if (set === undefined) {
            cacheSet[slot] = set = setOfRecord(word, kind);
            cacheWord[slot] = word;
            cacheKind[slot] = kind;
          }
          this.allocator.reserve(ipv4, set);
          reserved = true;
          // Every table binding in the pools is in the allocator (reserved above): reserve() just
          // proved this set overlaps none of them.
          input.ipv4 = ipv4;
          input.ports = set;
          t.addNamed(input, names, nameAt[i]!, nameAt[i + 1]! - 1);
        } catch (err) {
          if (reserved) this.allocator.release(ipv4, set!);
          notRestored(names.toString('utf8', nameAt[i], nameAt[i + 1]! - 1), (err as Error).message);
          continue;
        }
        this.live++;
        loaded++;
      }
      for (const b of block.bad) notRestored(b.subscriber, b.error);
    }
    return loaded;
  }

  /** Registered bindings now in the table. */
  get registered(): number {
    return this.live;
  }

  /** register --ipv6 ADDR [--ports N] */
  register(peer: Peer, req: RegisterRequest): LeaseReply {
    const key = this.keyOf(peer);
    const ipv6 = parseIpv6OrThrow(req.ipv6);
    this.checkIpv6(ipv6, req.ipv6, key);
    const size = this.sizeFor(key, req.ports); // checked even when the key already has its set
    const old = this.d.store.get(peer.fingerprint);
    if (old !== undefined) return this.move(old, req.ipv6, ipv6, key);

    const name = this.nameOf(key);
    if (this.d.table.findSubscriber(name).length > 0) throw new ProtocolError(EXIT_REFUSED, `subscriber name ${name} is already bound on this PRR`);
    const { ipv4, set } = this.allocateFree(key, size);
    const now = this.now();
    const row: StoredBinding = { fingerprint: peer.fingerprint, subscriber: name, ipv6: req.ipv6, ipv4, ports: set.toString(), expires: now + this.d.policy.leaseSeconds };
    try {
      this.d.store.put(row);
    } catch (err) {
      this.allocator.release(ipv4, set);
      throw new ProtocolError(EXIT_INTERNAL, `store: ${(err as Error).message}`);
    }
    try {
      this.d.table.add({ subscriber: name, ipv6, ipv4, ports: set });
      this.live++;
    } catch (err) {
      this.d.store.delete(peer.fingerprint);
      this.allocator.release(ipv4, set);
      throw new ProtocolError(EXIT_REFUSED, (err as Error).message);
    }
    this.d.log.info(`registered ${name} (${peer.fingerprint}) from ${peer.address}: ${req.ipv6} ${ipv4ToString(ipv4)} ${set}`);
    return this.reply(row, now);
  }

  /** renew [--ipv6 ADDR] */
  renew(peer: Peer, req: { ipv6: string | undefined }): LeaseReply {
    const key = this.keyOf(peer);
    const old = this.d.store.get(peer.fingerprint);
    if (old === undefined) throw new ProtocolError(EXIT_REFUSED, 'no binding for this key; register first');
    const text = req.ipv6 ?? old.ipv6;
    const ipv6 = parseIpv6OrThrow(text);
    this.checkIpv6(ipv6, text, key);
    return this.move(old, text, ipv6, key);
  }

  /** release */
  release(peer: Peer): ReleaseReply {
    const key = this.keyOf(peer);
    const old = this.d.store.get(peer.fingerprint);
    if (old === undefined) return { subscriber: this.nameOf(key), released: false };
    this.drop(old, `from ${peer.address}`);
    return { subscriber: old.subscriber, released: true };
  }

  /**
   * The operator's release (`prr subscribers release NAME`): the registered binding of that name
   * leaves the table and the store and its set is freed; the CPE's next request registers anew.
   * False when no registered binding has that name.
   */
  releaseByName(name: string): boolean {
    const row = this.d.store.getBySubscriber(name);
    if (row === undefined) return false;
    this.drop(row, 'by the operator');
    return true;
  }

  /** Delete the row (committed first), unbind, free the set. */
  private drop(old: StoredBinding, how: string): void {
    this.d.store.delete(old.fingerprint);
    const id = this.liveId(old);
    if (id !== undefined) {
      this.d.table.remove(id);
      this.live--;
    }
    try {
      this.allocator.release(old.ipv4, parsePortSet(old.ports, { allowSystemPorts: true }));
    } catch (err) {
      this.d.log.warn(`release ${old.subscriber}: ${(err as Error).message}`);
    }
    this.d.log.info(`released ${old.subscriber} (${old.fingerprint}) ${how}`);
  }

  /** status */
  status(peer: Peer): LeaseReply {
    this.keyOf(peer);
    const row = this.d.store.get(peer.fingerprint);
    if (row === undefined) throw new ProtocolError(EXIT_REFUSED, 'no binding for this key');
    return this.reply(row, this.now());
  }

  /** End the expired leases (see the file comment); returns how many bindings left the table and how many sets were freed. */
  expire(): { unbound: number; freed: number } {
    let unbound = 0;
    let freed = 0;
    for (const row of this.d.store.expired(this.now())) {
      const id = this.liveId(row);
      if (id !== undefined) {
        this.d.table.remove(id);
        this.live--;
        unbound++;
        this.d.log.info(`lease of ${row.subscriber} (${row.fingerprint}) ended: unbound, set kept for the key`);
      }
      if (!this.d.keys().has(row.fingerprint)) {
        this.d.store.delete(row.fingerprint);
        try {
          this.allocator.release(row.ipv4, parsePortSet(row.ports, { allowSystemPorts: true }));
        } catch (err) {
          this.d.log.warn(`expire ${row.subscriber}: ${(err as Error).message}`);
        }
        freed++;
        this.d.log.info(`${row.subscriber} (${row.fingerprint}) is no longer authorized: set ${ipv4ToString(row.ipv4)} ${row.ports} freed`);
      }
    }
    return { unbound, freed };
  }

  /**
   * Extend the lease of a stored binding and point it at `ipv6`: the same set (sticky), unless the
   * key's options changed since (its `set=` or `ports=` no longer describe the stored set). Then
   * the binding gets a new set here, in one step: the reply carries it and the CPE applies it.
   */
  private move(old: StoredBinding, text: string, ipv6: Buffer, key: KeyEntry): LeaseReply {
    const oldSet = parsePortSet(old.ports, { allowSystemPorts: true });
    const wanted = key.set !== undefined ? key.set.size : key.ports;
    const stale = !this.fits(key, oldSet);
    const id = this.liveId(old);
    let placed = { ipv4: old.ipv4, set: oldSet };
    if (stale) {
      this.allocator.release(old.ipv4, oldSet);
      try {
        placed = this.allocateFree(key, wanted!, id);
      } catch (err) {
        this.allocator.reserve(old.ipv4, oldSet);
        throw err;
      }
    }
    const undoPlace = (): void => {
      if (!stale) return;
      this.allocator.release(placed.ipv4, placed.set);
      this.allocator.reserve(old.ipv4, oldSet);
    };
    const now = this.now();
    const row: StoredBinding = { ...old, ipv6: ipv6ToString(ipv6, 0), ipv4: placed.ipv4, ports: placed.set.toString(), expires: now + this.d.policy.leaseSeconds };
    try {
      this.d.store.put(row);
    } catch (err) {
      undoPlace();
      throw new ProtocolError(EXIT_INTERNAL, `store: ${(err as Error).message}`);
    }
    const input = { subscriber: old.subscriber, ipv6, ipv4: placed.ipv4, ports: placed.set };
    try {
      if (id === undefined) {
        this.d.table.add(input);
        this.live++;
      }
      else if (stale || !this.d.table.ipv6Is(id, ipv6, 0)) this.d.table.change(id, { ...input, mtu: this.d.table.mtuOf(id) });
    } catch (err) {
      this.d.store.put(old);
      undoPlace();
      throw new ProtocolError(EXIT_REFUSED, (err as Error).message);
    }
    if (old.ipv6 !== row.ipv6) this.d.log.info(`${old.subscriber} moved: ${old.ipv6} -> ${text}`);
    if (stale) this.d.log.info(`${old.subscriber}: new set ${ipv4ToString(placed.ipv4)} ${placed.set} (was ${ipv4ToString(old.ipv4)} ${oldSet}): the key's options changed`);
    return this.reply(row, now);
  }

  /**
   * The table id of a stored binding, if it is still there: the binding of its name on its
   * address and set (the operator may have released it, or bound the name otherwise).
   */
  private liveId(row: StoredBinding): number | undefined {
    const t = this.d.table;
    return t.findSubscriber(row.subscriber).find((id) => t.ipv4Of(id) === row.ipv4 && t.portsOf(id)?.toString() === row.ports);
  }

  /** Does `set` still answer the key's options (its fixed set=, its ports=)? */
  private fits(key: KeyEntry, set: PortSet): boolean {
    if (key.set !== undefined) return key.set.equals(set);
    if (key.ports === undefined) return true;
    // PSID policy: a key's ports= is met by one PSID set at least that large.
    if (this.d.policy.psid !== undefined && this.slotSize >= key.ports) return set.kind === 'psid';
    return set.size === key.ports;
  }

  private keyOf(peer: Peer): KeyEntry {
    const key = this.d.keys().get(peer.fingerprint);
    if (key === undefined) throw new ProtocolError(EXIT_REFUSED, `key ${peer.fingerprint} is no longer authorized`);
    return key;
  }

  private nameOf(key: KeyEntry): string {
    return key.name ?? `cpe-${key.fingerprint.slice(7, 19).replace(/[+/]/g, '_')}`;
  }

  /** Refuse the PRR's own tunnel address and an address bound to another subscriber. */
  private checkIpv6(ipv6: Buffer, text: string, key: KeyEntry): void {
    if (ipv6.equals(this.d.policy.prrIpv6)) throw new ProtocolError(EXIT_REFUSED, `${text} is the PRR's tunnel address`);
    if (ipv6[0] === 0xff || ipv6.every((b, i) => b === (i === 15 ? 1 : 0)) || ipv6.every((b) => b === 0)) {
      throw new ProtocolError(EXIT_REFUSED, `${text} is not a unicast address`);
    }
    const other = this.d.table.lookupIpv6(ipv6, 0);
    const name = this.nameOf(key);
    if (other >= 0 && this.d.table.subscriberOf(other) !== name) {
      throw new ProtocolError(EXIT_REFUSED, `${text} is already bound to subscriber ${this.d.table.subscriberOf(other)}`);
    }
  }

  /** The set size for a request: its --ports (within the policy or the key's ports=), else the key's, else the default. */
  private sizeFor(key: KeyEntry, asked: number | undefined): number {
    const p = this.d.policy;
    if (key.set !== undefined) return key.set.size;
    if (asked !== undefined && key.ports === undefined && (asked < p.minPorts || asked > p.maxPorts)) {
      throw new ProtocolError(EXIT_REFUSED, `--ports ${asked}: this PRR hands out ${p.minPorts}-${p.maxPorts} ports`);
    }
    if (asked !== undefined && key.ports !== undefined && asked > key.ports) {
      throw new ProtocolError(EXIT_REFUSED, `--ports ${asked}: this key may have at most ${key.ports}`);
    }
    return asked ?? key.ports ?? (p.psid !== undefined ? this.slotSize : p.defaultPorts);
  }

  /**
   * allocate(), skipping sets the table already holds under a binding the allocator did not make
   * (one added through the control socket or a reload): such a set stays reserved, so it is not
   * offered again, and the next one is tried.
   */
  private allocateFree(key: KeyEntry, size: number, self?: number): { ipv4: number; set: PortSet } {
    for (;;) {
      const a = this.allocate(key, size);
      const other = this.d.table.overlapping(a.ipv4, a.set);
      if (other < 0 || other === self) return a;
      this.d.log.warn(`${ipv4ToString(a.ipv4)} ${a.set} is held by ${this.d.table.subscriberOf(other)}, bound outside registration: set aside`);
      if (key.set !== undefined) throw new ProtocolError(EXIT_REFUSED, `this key's set ${key.set} is held by subscriber ${this.d.table.subscriberOf(other)}`);
    }
  }

  /** A new set of `size` ports for `key`: its fixed set=, else the first free one. */
  private allocate(key: KeyEntry, size: number): { ipv4: number; set: PortSet } {
    if (key.set !== undefined) return this.place(() => [key.set!], size);
    const psid = this.d.policy.psid;
    // One slot: default_ports under a range policy; anything up to one PSID set under a PSID policy.
    if (psid !== undefined ? size <= this.slotSize : size === this.d.policy.defaultPorts) {
      try {
        const a = this.allocator.allocate();
        return { ipv4: a.addr, set: a.set };
      } catch (err) {
        if (err instanceof PoolExhaustedError) throw new ProtocolError(EXIT_EXHAUSTED, err.message);
        throw err;
      }
    }
    if (psid !== undefined) {
      // A shorter PSID: 2^j adjacent slots in one set, aligned, so the slots around stay whole.
      let k = psid.k;
      while (k > 0 && new PsidSet(psid.a, k, 0, { allowSystemPorts: true }).size < size) k--;
      if (new PsidSet(psid.a, k, 0, { allowSystemPorts: true }).size < size) {
        throw new ProtocolError(EXIT_REFUSED, `--ports ${size}: more than one shared address holds under psid_offset ${psid.a}`);
      }
      return this.place(function* () {
        for (let id = 0; id < 2 ** k; id++) yield new PsidSet(psid.a, k, id, { allowSystemPorts: true });
      }, size);
    }
    const low = this.d.policy.allowSystemPorts ? 0 : FIRST_USER_PORT;
    return this.place(function* () {
      for (let f = Math.ceil(low / size) * size; f + size - 1 <= MAX_PORT; f += size) yield new PortRange(f, f + size - 1, { allowSystemPorts: true });
    }, size);
  }

  /** First fit over the pool addresses of the first candidate set that is free there. */
  private place(candidates: () => Iterable<PortSet>, size: number): { ipv4: number; set: PortSet } {
    for (const ipv4 of this.addrs) {
      if (this.allocator.usage(ipv4).free === 0) continue;
      for (const set of candidates()) {
        try {
          this.allocator.reserve(ipv4, set);
          return { ipv4, set };
        } catch (err) {
          if (!(err instanceof PortSetError)) throw err;
        }
      }
    }
    throw new ProtocolError(EXIT_EXHAUSTED, `no free set of ${size} ports left in ${this.addrs.length} shared IPv4 addresses`);
  }

  /**
   * The reply for a stored row, its lease counted from `now`: for register and renew the instant
   * the lease was granted (expires = now + lease), so the reply carries the lease granted even when
   * the clock ticks between the commit and the reply; for status the present.
   */
  private reply(row: StoredBinding, now: number): LeaseReply {
    const set = parsePortSet(row.ports, { allowSystemPorts: true });
    const r: LeaseReply = {
      subscriber: row.subscriber,
      ipv6: row.ipv6,
      shared_ipv4: ipv4ToString(row.ipv4),
      ports: row.ports,
      prr_ipv6: ipv6ToString(this.d.policy.prrIpv6, 0),
      lease_seconds: Math.max(0, row.expires - now),
      mtu: this.d.policy.tunnelMtu,
    };
    if (set.psid !== undefined) r.psid = { offset: set.psid.offset, length: set.psid.length, value: set.psid.id };
    r.ranges = set.chunks();
    return r;
  }
}
