/**
 * From observations to verdicts: for each guarantee flag, whether the probes saw it hold.
 * A claimed flag is `verified` only when its probe positively observed the property on at least
 * one region it found; one that was seen not to hold, or that the probes could not observe, is
 * `violated` (with the reason). An unclaimed flag is `holds`, `absent`, or `skipped` when it
 * cannot be probed here.
 * @module
 */
import { GUARANTEE_FLAGS, type GuaranteeFlag } from '@secure-memory/core';
import type { HitRecord, MappingRecord, Observations, Phase, RegionView } from './observe.js';
import type { ChildOutcome } from './session.js';

/** A verdict on one flag. */
export type GuaranteeStatus = 'verified' | 'violated' | 'holds' | 'absent' | 'skipped';

/** The verdict on one flag, with what was seen. */
export interface GuaranteeVerdict {
  claimed: boolean;
  status: GuaranteeStatus;
  /** What was observed, or why it could not be. */
  detail: string;
}

/** `true` observed, `false` observed not to hold, `undefined` cannot be observed here. */
interface Finding {
  holds: boolean | undefined;
  detail: string;
}

const isSecretMemory = (m: MappingRecord): boolean => m.path.startsWith('/secretmem');
const describe = (m: MappingRecord): string => `${m.range} ${m.perms} ${m.path || '[anon]'} {${m.vmFlags.join(' ')}}`;

function uniqueMappings(list: (MappingRecord | null)[]): MappingRecord[] {
  return [...new Map(list.filter((m): m is MappingRecord => m !== null).map((m) => [m.range, m])).values()];
}

function regionMappings(regions: (RegionView | null)[]): MappingRecord[] {
  return regions.flatMap((r) => (r?.mapping ? [r.mapping] : []));
}

/** Hits of the held secrets (not the worker's) in a phase. */
const heldHits = (o: Observations, phase: Phase): HitRecord[] => o.scans[phase].hits.filter((h) => h.secret < o.held.length);

/** Every mapping seen to hold the plaintext (scan hits), plus the regions the backend pointed at. */
function holdingMappings(o: Observations, phases: ('idle' | 'access')[]): MappingRecord[] {
  return uniqueMappings(phases.flatMap((p) => [...heldHits(o, p).map((h) => h.mapping), ...regionMappings(o.regions[p])]));
}

function everyMapping(mappings: MappingRecord[], test: (m: MappingRecord) => boolean, what: string): Finding {
  if (mappings.length === 0) return { holds: undefined, detail: 'no mapping holding the plaintext was found to inspect (0 hits and no region location)' };
  const bad = mappings.filter((m) => !test(m));
  return bad.length === 0
    ? { holds: true, detail: `${mappings.length} mapping(s) holding the plaintext are ${what}` }
    : { holds: false, detail: `not ${what}: ${bad.map(describe).join('; ')}` };
}

/** Copies, grouped by secret and encoding: `new(new Uint8Array(32)): raw 32 B in 7f..-7f.. rw-p [anon]`. */
export function describeHits(hits: HitRecord[], limit = 6): string {
  const groups = new Map<string, HitRecord[]>();
  for (const h of hits) {
    const key = `${h.label}: ${h.encoding}`;
    groups.set(key, [...(groups.get(key) ?? []), h]);
  }
  const parts = [...groups].slice(0, limit).map(([key, list]) => {
    const sizes = [...new Set(list.map((h) => h.bytes))].sort((a, b) => b - a).slice(0, 3).join('/');
    const where = uniqueMappings(list.map((h) => h.mapping)).slice(0, 2).map(describe).join(', ');
    return `${key} x${list.length} (${sizes} bytes) in ${where || 'memory outside the mappings seen'}`;
  });
  return `${hits.length} copies: ${parts.join('; ')}${groups.size > limit ? `; and ${groups.size - limit} more kinds` : ''}`;
}

function hitsSummary(hits: HitRecord[], phase: string): string {
  return hits.length === 0 ? `0 copies ${phase}` : `${phase}: ${describeHits(hits)}`;
}

function event(outcome: ChildOutcome, name: string): Record<string, unknown> | undefined {
  return outcome.events.find((e) => e.event === name);
}

function childFailure(outcome: ChildOutcome): string | undefined {
  const error = event(outcome, 'error');
  if (error !== undefined) return `the probe child failed: ${String(error.code)} ${String(error.message)}`;
  if (outcome.timedOut === true) return 'the probe child was killed by its time limit';
  return undefined;
}

const died = (o: ChildOutcome, ...signals: string[]): boolean => o.signal !== null && signals.includes(o.signal);

/** What the transfer probe saw: `undefined` when it could not run here. */
function transferFinding(o: Observations): { ok: boolean; detail: string; emptySilently: boolean } | undefined {
  const t = o.transfer;
  if (event(t, 'unsupported') !== undefined) return undefined;
  const failure = childFailure(t);
  if (failure !== undefined) return { ok: false, detail: `transfer probe: ${failure}`, emptySilently: false };
  const refused = event(t, 'refused');
  if (refused !== undefined) return { ok: true, detail: `transfer() of a view was refused (${String(refused.name)})`, emptySilently: false };
  const read = event(t, 'read');
  if (read === undefined) {
    if (event(t, 'access-ended') !== undefined && died(t, 'SIGSEGV', 'SIGBUS')) {
      const loud = event(t, 'access-error');
      return { ok: true, detail: `a view moved out with transfer() faulted (${t.signal}) when read after its access${loud === undefined ? '' : ` (the access ended with ${String(loud.code)})`}`, emptySilently: false };
    }
    return { ok: false, detail: `the transfer probe ended without a result (code ${t.code}, signal ${t.signal})`, emptySilently: false };
  }
  const loud = event(t, 'access-error');
  const noticed = loud === undefined ? '' : ` (the access ended with ${String(loud.code)})`;
  if (read.secret === true) return { ok: false, detail: `a view moved out with transfer() still read the secret after its access${noticed}`, emptySilently: false };
  if (read.zeros === true && loud === undefined) return { ok: false, detail: 'a view moved out with transfer() read as zeros after its access (silently an empty key)', emptySilently: true };
  return { ok: true, detail: `a view moved out with transfer() no longer reached the secret (byteLength ${String(read.byteLength)})${noticed}`, emptySilently: false };
}

/** What the kept-view-after-close probe saw. */
function afterCloseFinding(o: Observations): { ok: boolean; detail: string } {
  const k = o.keepAfterClose;
  const failure = childFailure(k);
  if (failure !== undefined) return { ok: false, detail: `kept-view-after-close probe: ${failure}` };
  const result = event(k, 'result');
  if (result?.readOther === true) return { ok: false, detail: 'a view kept past close() read another secret during that secret\'s access' };
  if (result !== undefined) return { ok: true, detail: `a view kept past close() did not read any of ${String(result.tries)} later secrets` };
  if (event(k, 'kept') !== undefined && died(k, 'SIGSEGV', 'SIGBUS')) return { ok: true, detail: `a view kept past close() faulted (${k.signal}) when read` };
  return { ok: false, detail: `the kept-view-after-close probe ended without a result (code ${k.code}, signal ${k.signal})` };
}

const inRange = (address: string, m: MappingRecord): boolean => {
  const [start, end] = m.range.split('-').map((x) => BigInt(`0x${x}`)) as [bigint, bigint];
  const a = BigInt(address);
  return a >= start && a < end;
};

/**
 * Why mappings the scan could not read may hide plaintext, or `undefined` when they cannot: every
 * secret's region is known, its plaintext was found inside that region during access (so the
 * location is true), and no region lies in an unreadable mapping.
 */
function hiddenFromScan(o: Observations, unreadable: { mapping: MappingRecord; code: string }[], regions: (RegionView | null)[]): string | undefined {
  if (unreadable.length === 0) return undefined;
  const list = `${unreadable.length} mapping(s) with data could not be read (${unreadable.map((u) => `${describe(u.mapping)}: ${u.code}`).join('; ')})`;
  if (regions.length === 0 || regions.some((r) => r === null)) return `${list} and the backend does not say where its secrets are: a copy there cannot be ruled out`;
  const located = o.regions.access.every((r, i) => {
    if (r === null) return false;
    const start = BigInt(r.address);
    return heldHits(o, 'access').some((h) => h.secret === i && h.encoding === 'raw' && BigInt(h.address) >= start && BigInt(h.address) < start + BigInt(r.size));
  });
  if (!located) return `${list}, and the plaintext was not found inside the regions the backend points at during access: a copy there cannot be ruled out`;
  const inside = regions.filter((r) => r !== null && unreadable.some((u) => inRange(r.address, u.mapping)));
  if (inside.length > 0) return `${inside.length} secret region(s) lie in mappings that could not be read (${list}): a copy there cannot be ruled out`;
  return undefined;
}

function observeFlag(flag: GuaranteeFlag, o: Observations): Finding {
  const idleHits = heldHits(o, 'idle');
  const accessHits = heldHits(o, 'access');
  const regionsKnown = o.regions.idle.length > 0 && o.regions.idle.every((r) => r !== null);
  switch (flag) {
    case 'wipesOnClose': {
      const closed = o.scans.closed;
      const worker = o.workerError === null ? `, and ${o.workerHeld.length} secrets of a terminated worker thread` : ` (the worker-thread probe could not run: ${o.workerError})`;
      if (closed.hits.length > 0) return { holds: false, detail: `after close and GC, ${describeHits(closed.hits)}` };
      // Memory that cannot be read from outside may hold a copy, unless every secret's region is known
      // (and tied to its plaintext) and none of them lies there.
      const hidden = hiddenFromScan(o, closed.unreadable, o.regions.closed);
      if (hidden !== undefined) return { holds: undefined, detail: `0 copies after close, but ${hidden}` };
      const seenBefore = idleHits.length + accessHits.length > 0;
      const regionsGone = o.regions.closed.filter((r) => r !== null && (r.mapping === null || r.readError === null)).length;
      if (!seenBefore && regionsGone === 0) return { holds: undefined, detail: 'the plaintext was never found before close and no region was located: 0 copies after close shows nothing' };
      return {
        holds: true,
        detail: `0 copies after close and GC of ${o.held.length} secrets (from the CSPRNG, an off-heap source, new Uint8Array(32), Buffer.alloc(32) and a Buffer pool slice)${worker}; the plaintext was ${seenBefore ? 'found before close' : 'not visible before close, and the regions the backend pointed at are unmapped or readable now'}`,
      };
    }

    case 'lockedInRam':
      return everyMapping(holdingMappings(o, ['idle', 'access']), (m) => m.vmFlags.includes('lo') || isSecretMemory(m), 'locked (lo) or secret memory');

    case 'excludedFromCoreDumps': {
      const dumped = [...idleHits, ...accessHits].filter((h) => h.mapping !== null && !h.mapping.vmFlags.includes('dd') && !isSecretMemory(h.mapping));
      const core = o.core;
      if (core.available && core.hits.length > 0) return { holds: false, detail: `gcore during access: ${describeHits(core.hits)}` };
      if (dumped.length > 0) return { holds: false, detail: `copies in mappings a core dump includes (no dd): ${describeHits(dumped)}` };
      if (!core.available && !core.tooLarge) return { holds: undefined, detail: `no core dump could be taken: ${core.reason}` };
      const flags = everyMapping(holdingMappings(o, ['idle', 'access']), (m) => m.vmFlags.includes('dd') || isSecretMemory(m), 'marked dd (or secret memory)');
      if (flags.holds !== true) return flags;
      return { holds: true, detail: `${core.available ? `gcore during access (${(core.coreBytes / 2 ** 20).toFixed(0)} MiB): 0 copies` : core.reason}; ${flags.detail}` };
    }

    case 'noAccessWhenIdle': {
      const failure = childFailure(o.keepView);
      if (failure !== undefined) return { holds: undefined, detail: failure };
      const kept = event(o.keepView, 'kept');
      const revoked = kept?.byteLength === 0 && o.keepView.code === 0;
      const faulted = died(o.keepView, 'SIGSEGV', 'SIGBUS');
      if (!revoked && !faulted) return { holds: false, detail: 'a view kept past its action was still readable' };
      const afterClose = afterCloseFinding(o);
      if (!afterClose.ok) return { holds: false, detail: afterClose.detail };
      const transfer = transferFinding(o);
      if (transfer !== undefined && !transfer.ok && !transfer.emptySilently) return { holds: false, detail: transfer.detail };
      const idle = uniqueMappings([...idleHits.map((h) => h.mapping), ...regionMappings(o.regions.idle)]);
      if (idle.length === 0) return { holds: undefined, detail: 'no idle mapping holding the plaintext was found (0 copies idle and no region location): nothing was seen to be inaccessible' };
      const readable = idle.filter((m) => m.perms[0] === 'r' || m.perms[1] === 'w');
      if (readable.length > 0) return { holds: false, detail: `idle plaintext in accessible mappings: ${readable.map(describe).join('; ')}` };
      return { holds: true, detail: `a kept view ${faulted ? `faulted (${o.keepView.signal})` : 'was revoked'}; ${idle.length} idle mapping(s) holding the plaintext inaccessible; ${afterClose.detail}${transfer === undefined ? '' : `; ${transfer.detail}`}` };
    }

    case 'viewsRevoked': {
      const failure = childFailure(o.keepView);
      if (failure !== undefined) return { holds: undefined, detail: failure };
      const kept = event(o.keepView, 'kept');
      if (kept === undefined) return { holds: false, detail: `the child died (${o.keepView.signal}) before it could report the kept view` };
      if (!(kept.byteLength === 0 && o.keepView.code === 0)) {
        return { holds: false, detail: `a view kept past its action had byteLength ${String(kept.byteLength)}${o.keepView.signal ? ` and reading it raised ${o.keepView.signal}` : ''}` };
      }
      const afterClose = afterCloseFinding(o);
      if (!afterClose.ok) return { holds: false, detail: afterClose.detail };
      const transfer = transferFinding(o);
      if (transfer !== undefined && !transfer.ok) return { holds: false, detail: transfer.detail };
      return { holds: true, detail: `a view kept past its action had byteLength 0 and the process lived; ${afterClose.detail}; ${transfer?.detail ?? `transfer() not probed (ArrayBuffer.prototype.transfer needs Node 22+, this is ${process.version})`}` };
    }

    case 'guardPages': {
      const probes = [o.guardAfter, o.guardBefore];
      if (probes.some((p) => event(p, 'no-region') !== undefined)) return { holds: undefined, detail: 'the backend does not say where its regions are (no region probe)' };
      const failure = probes.map(childFailure).find((f) => f !== undefined);
      if (failure !== undefined) return { holds: undefined, detail: failure };
      const after = died(o.guardAfter, 'SIGSEGV', 'SIGBUS') && event(o.guardAfter, 'touching') !== undefined;
      const before = died(o.guardBefore, 'SIGSEGV', 'SIGBUS') && event(o.guardBefore, 'touching') !== undefined;
      return {
        holds: after && before,
        detail: `one byte past the end: ${after ? 'faulted' : 'readable'}; the page before the data: ${before ? 'faulted' : 'readable'}`,
      };
    }

    case 'canary': {
      const c = o.canary;
      if (event(c, 'no-region') !== undefined) return { holds: undefined, detail: 'the backend does not say where its regions are (no region probe)' };
      const failure = childFailure(c);
      if (failure !== undefined) return { holds: undefined, detail: failure };
      const cannot = event(c, 'cannot-write');
      if (cannot !== undefined) return { holds: false, detail: `the byte before the data cannot be written (${String(cannot.reason)}): no canary there` };
      if (event(c, 'close-error')?.code === 'ERR_INTEGRITY') return { holds: true, detail: 'after a write just before the data, close() threw ERR_INTEGRITY' };
      if (event(c, 'written') !== undefined && died(c, 'SIGABRT')) return { holds: true, detail: 'after a write just before the data, the library aborted the process (SIGABRT) on free' };
      if (event(c, 'closed-clean') !== undefined) return { holds: false, detail: 'a write just before the data went unnoticed on close' };
      return { holds: false, detail: `the probe ended without detection (code ${c.code}, signal ${c.signal})` };
    }

    case 'encryptedAtRest': {
      if (idleHits.length > 0) return { holds: false, detail: `plaintext found while idle: ${hitsSummary(idleHits, 'idle')}` };
      const found = new Set(accessHits.map((h) => h.secret)).size;
      if (found < o.held.length) return { holds: undefined, detail: `0 copies idle, but only ${found} of ${o.held.length} secrets were found during access, so the scan cannot tell encryption from invisibility` };
      const hidden = hiddenFromScan(o, o.scans.idle.unreadable, o.regions.idle);
      if (hidden !== undefined) return { holds: undefined, detail: `0 copies idle, but ${hidden}` };
      return { holds: true, detail: `0 copies idle in ${(o.scans.idle.scannedBytes / 2 ** 20).toFixed(0)} MiB, every mapping with data read; every secret found during access` };
    }

    case 'notInheritedByFork':
      return everyMapping(holdingMappings(o, ['idle', 'access']), (m) => m.vmFlags.includes('wf') || m.vmFlags.includes('dc'), 'wiped on fork (wf) or not copied (dc)');

    case 'hiddenFromKernel': {
      const seen = [...idleHits, ...accessHits];
      if (seen.length > 0) return { holds: false, detail: `an external scan read the plaintext: ${describeHits(seen)}` };
      if (!regionsKnown) return { holds: undefined, detail: 'the plaintext was not found, but the backend does not say where its regions are, so a failed read cannot be shown' };
      const regions = [...o.regions.idle, ...o.regions.access].filter((r): r is RegionView => r !== null);
      const readable = regions.filter((r) => r.readError === null);
      return readable.length === 0
        ? { holds: true, detail: `external reads of every region failed (${[...new Set(regions.map((r) => r.readError))].join(', ')}); 0 copies idle and during access` }
        : { holds: false, detail: `${readable.length} region read(s) succeeded from outside` };
    }

    case 'constantTimeEquals':
      if (!o.equals.correct) return { holds: false, detail: 'equals gave a wrong answer in the correctness table' };
      return o.equals.sharedImplementation
        ? { holds: true, detail: "correctness table passed; equals is core's, built on crypto.timingSafeEqual (OpenSSL CRYPTO_memcmp)" }
        : { holds: undefined, detail: "correctness table passed, but equals is the backend's own: its primitive cannot be confirmed from outside" };
  }
}

/** Judges every flag of a manifest against what was observed. */
export function judge(o: Observations): Record<GuaranteeFlag, GuaranteeVerdict> {
  const verdicts = {} as Record<GuaranteeFlag, GuaranteeVerdict>;
  for (const flag of GUARANTEE_FLAGS) {
    const claimed = o.guarantees[flag] === true;
    const { holds, detail } = observeFlag(flag, o);
    let status: GuaranteeStatus;
    if (claimed) status = holds === true ? 'verified' : 'violated';
    else status = holds === undefined ? 'skipped' : holds ? 'holds' : 'absent';
    verdicts[flag] = { claimed, status, detail: claimed && holds === undefined ? `cannot be observed: ${detail}` : detail };
  }
  return verdicts;
}

/** The result of one real-use probe. */
export interface RealUseResult {
  name: string;
  /** The flags whose verdicts take this probe into account. */
  bearsOn: GuaranteeFlag[];
  /** True passed, false failed, null not run here (such as transfer() before Node 22). */
  passed: boolean | null;
  /** A failure fails conformance whatever the manifest claims (a view reading another secret is a use after free). */
  required: boolean;
  detail: string;
}

/** The real-use probes every backend runs, each with what it bears on. */
export function realUse(o: Observations): RealUseResult[] {
  const closedBy = (pred: (label: string) => boolean): HitRecord[] => o.scans.closed.hits.filter((h) => pred(h.label));
  const ingest = closedBy((l) => ['new(new Uint8Array(32))', 'new(Buffer.alloc(32))', 'new(Buffer pool slice, 32)'].includes(l));
  const worker = closedBy((l) => l.startsWith('worker'));
  const afterClose = afterCloseFinding(o);
  const transfer = transferFinding(o);
  return [
    {
      name: 'new() from new Uint8Array(32), Buffer.alloc(32) and a Buffer pool slice, then close and GC: 0 copies',
      bearsOn: ['wipesOnClose', 'lockedInRam', 'excludedFromCoreDumps', 'encryptedAtRest', 'hiddenFromKernel', 'notInheritedByFork'],
      passed: ingest.length === 0,
      required: false,
      detail: ingest.length === 0 ? '0 copies after close and GC' : `after close and GC, ${describeHits(ingest)}`,
    },
    {
      name: "a worker thread's secrets are gone after terminate()",
      bearsOn: ['wipesOnClose'],
      passed: o.workerError !== null ? null : worker.length === 0,
      required: false,
      detail: o.workerError !== null ? `not run: the backend made no secrets in a worker thread: ${o.workerError}` : worker.length === 0 ? '0 copies after terminate() and GC' : describeHits(worker),
    },
    {
      name: "a view kept past close() never reads another secret during that secret's access",
      bearsOn: ['viewsRevoked', 'noAccessWhenIdle'],
      passed: afterClose.ok,
      required: true,
      detail: afterClose.detail,
    },
    {
      name: 'a view moved out with ArrayBuffer.prototype.transfer() does not outlive its access',
      bearsOn: ['viewsRevoked', 'noAccessWhenIdle'],
      passed: transfer === undefined ? null : transfer.ok,
      required: false,
      detail: transfer === undefined ? `not run: ArrayBuffer.prototype.transfer needs Node 22+, this is ${process.version}` : transfer.detail,
    },
  ];
}
