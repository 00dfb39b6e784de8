/**
 * From observations to verdicts: for each guarantee flag, whether the probes saw it hold.
 * A claimed flag that was observed is `verified`, one that was not (or could not be) is
 * `violated`; an unclaimed flag is `holds`, `absent`, or `skipped` when it cannot be probed here.
 * @module
 */
import { GUARANTEE_FLAGS, type GuaranteeFlag } from '@secure-memory/core';
import type { ChildOutcome, HitRecord, Observations, RegionView } from './observe.js';

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

type MappingRecord = HitRecord['mapping'];

const isSecretMemory = (m: MappingRecord): boolean => m.path.startsWith('/secretmem');
const describe = (m: MappingRecord): string => `${m.range} ${m.perms} ${m.path || '[anon]'} {${m.vmFlags.join(' ')}}`;

function uniqueMappings(list: MappingRecord[]): MappingRecord[] {
  return [...new Map(list.map((m) => [m.range, m])).values()];
}

function regionMappings(regions: (RegionView | null)[]): MappingRecord[] {
  return regions.flatMap((r) => (r?.mapping ? [r.mapping] : []));
}

/** Every mapping seen to hold the plaintext (scan hits), plus the regions the backend pointed at. */
function holdingMappings(o: Observations, phases: ('idle' | 'access')[]): MappingRecord[] {
  return uniqueMappings(
    phases.flatMap((p) => [...o.scans[p].hits.map((h) => h.mapping), ...regionMappings(o.regions[p])]),
  );
}

function everyMapping(mappings: MappingRecord[], test: (m: MappingRecord) => boolean, what: string): Finding {
  if (mappings.length === 0) return { holds: undefined, detail: 'no mapping holding the plaintext was found to inspect' };
  const bad = mappings.filter((m) => !test(m));
  return bad.length === 0
    ? { holds: true, detail: `${mappings.length} mapping(s) holding the plaintext are ${what}` }
    : { holds: false, detail: `not ${what}: ${bad.map(describe).join('; ')}` };
}

function hitsSummary(o: Observations, phase: 'idle' | 'access' | 'closed'): string {
  const hits = o.scans[phase].hits;
  return hits.length === 0 ? `0 hits ${phase}` : `${hits.length} hit(s) ${phase}, in ${uniqueMappings(hits.map((h) => h.mapping)).map(describe).join('; ')}`;
}

function event(outcome: ChildOutcome, name: string): Record<string, unknown> | undefined {
  return outcome.events.find((e) => e.event === name);
}

function childFailure(outcome: ChildOutcome): string | undefined {
  const error = event(outcome, 'error');
  return error === undefined ? undefined : `the probe child failed: ${String(error.code)} ${String(error.message)}`;
}

const died = (o: ChildOutcome, ...signals: string[]): boolean => o.signal !== null && signals.includes(o.signal);

function observeFlag(flag: GuaranteeFlag, o: Observations): Finding {
  const anyHits = o.scans.idle.hits.length + o.scans.access.hits.length > 0;
  const regionsKnown = o.regions.idle.every((r) => r !== null);
  switch (flag) {
    case 'wipesOnClose':
      return { holds: o.scans.closed.hits.length === 0, detail: `external memory scan after close: ${hitsSummary(o, 'closed')}` };

    case 'lockedInRam':
      return everyMapping(holdingMappings(o, ['idle', 'access']), (m) => m.vmFlags.includes('lo') || isSecretMemory(m), 'locked (lo) or secret memory');

    case 'excludedFromCoreDumps': {
      const { idle, access } = o.cores;
      if (!idle.available || !access.available) {
        return { holds: undefined, detail: `no core dump could be taken: ${!idle.available ? idle.reason : (access as { reason: string }).reason}` };
      }
      const hits = [...idle.hits, ...access.hits].reduce((a, b) => a + b, 0);
      if (hits > 0) return { holds: false, detail: `gcore found the plaintext ${idle.hits.reduce((a, b) => a + b, 0)} time(s) idle and ${access.hits.reduce((a, b) => a + b, 0)} during access` };
      const flags = everyMapping(holdingMappings(o, ['idle', 'access']), (m) => m.vmFlags.includes('dd') || isSecretMemory(m), 'marked dd (or secret memory)');
      return { holds: flags.holds !== false, detail: `gcore: 0 hits idle and during access; ${flags.detail}` };
    }

    case 'noAccessWhenIdle': {
      const failure = childFailure(o.keepView);
      if (failure !== undefined) return { holds: undefined, detail: failure };
      const kept = event(o.keepView, 'kept');
      const revoked = kept?.byteLength === 0 && o.keepView.code === 0;
      const faulted = died(o.keepView, 'SIGSEGV', 'SIGBUS');
      if (!revoked && !faulted) return { holds: false, detail: 'a view kept past its action was still readable' };
      const idle = uniqueMappings([...o.scans.idle.hits.map((h) => h.mapping), ...regionMappings(o.regions.idle)]);
      const readable = idle.filter((m) => m.perms[0] === 'r' || m.perms[1] === 'w');
      if (readable.length > 0) return { holds: false, detail: `idle plaintext in accessible mappings: ${readable.map(describe).join('; ')}` };
      return { holds: true, detail: `a kept view ${faulted ? `faulted (${o.keepView.signal})` : 'was revoked'}; ${idle.length} idle mapping(s) inaccessible` };
    }

    case 'viewsRevoked': {
      const failure = childFailure(o.keepView);
      if (failure !== undefined) return { holds: undefined, detail: failure };
      const kept = event(o.keepView, 'kept');
      if (kept === undefined) return { holds: false, detail: `the child died (${o.keepView.signal}) before it could report the kept view` };
      return kept.byteLength === 0 && o.keepView.code === 0
        ? { holds: true, detail: 'a view kept past its action had byteLength 0 and the process lived' }
        : { holds: false, detail: `a view kept past its action had byteLength ${String(kept.byteLength)}${o.keepView.signal ? ` and reading it raised ${o.keepView.signal}` : ''}` };
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
      const idle = o.scans.idle.hits.length;
      const found = new Set(o.scans.access.hits.map((h) => h.secret)).size;
      if (idle > 0) return { holds: false, detail: `plaintext found while idle: ${hitsSummary(o, 'idle')}` };
      if (found < o.sizes.length) return { holds: undefined, detail: `0 hits idle, but only ${found} of ${o.sizes.length} secrets were found during access, so the scan cannot tell encryption from invisibility` };
      return { holds: true, detail: `0 hits idle; every secret found during access` };
    }

    case 'notInheritedByFork':
      return everyMapping(holdingMappings(o, ['idle', 'access']), (m) => m.vmFlags.includes('wf') || m.vmFlags.includes('dc'), 'wiped on fork (wf) or not copied (dc)');

    case 'hiddenFromKernel': {
      if (anyHits) return { holds: false, detail: `an external scan read the plaintext: ${hitsSummary(o, anyHits && o.scans.idle.hits.length > 0 ? 'idle' : 'access')}` };
      if (!regionsKnown) return { holds: undefined, detail: 'the plaintext was not found, but the backend does not say where its regions are, so a failed read cannot be shown' };
      const regions = [...o.regions.idle, ...o.regions.access] as RegionView[];
      const readable = regions.filter((r) => r.readError === null);
      return readable.length === 0
        ? { holds: true, detail: `external reads of every region failed (${[...new Set(regions.map((r) => r.readError))].join(', ')}); 0 hits idle and during access` }
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
