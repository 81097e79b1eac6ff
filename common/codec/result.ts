/**
 * How codecs report failure: never by throwing. A decoder returns the offset just past what it
 * read (>= 0) on success, or one of the negative codes below. Each code has one stable name, used
 * as the `reason` label of drop counters, so the names must not change.
 */

export const DecodeError = {
  /** Fewer bytes than the header, or than a length field, says there are. */
  truncated: -1,
  /** IP version field is not the one expected (4 or 6). */
  bad_version: -2,
  /** IPv4 IHL below 5 (or, when encoding, a header length that is not 20..60 in steps of 4). */
  bad_ihl: -3,
  /** IPv4 total length smaller than the header (or, when encoding, over 65535). */
  bad_total_length: -4,
  /** A header or upper-layer checksum does not verify. */
  bad_checksum: -5,
  /** IPv6 extension-header chain is malformed, misordered or longer than we walk. */
  bad_ext_header: -6,
  /** A non-first fragment: the upper-layer header is not in this packet. */
  fragment: -7,
  /** TCP data offset below 5 words or beyond the segment. */
  bad_data_offset: -8,
  /** UDP length below 8 or beyond the IP payload. */
  bad_udp_length: -9,
  /** A malformed IPv4 or TCP option (zero or overrunning length). */
  bad_option: -10,
  /** The ICMP message is not of the kind the function works on. */
  bad_icmp_type: -11,
  /** The packet must be fragmented but has Don't Fragment set. */
  dont_fragment: -12,
  /** The MTU is too small to carry the header and 8 bytes of data. */
  bad_mtu: -13,
  /** The caller's output buffer is too small. */
  no_space: -14,
  /** Address text does not parse. */
  bad_address: -15,
} as const;

export type DecodeErrorName = keyof typeof DecodeError;
export type DecodeErrorCode = (typeof DecodeError)[DecodeErrorName];

/** Names indexed by `-code - 1`, in code order. */
export const DECODE_ERROR_NAMES: readonly DecodeErrorName[] = (Object.keys(DecodeError) as DecodeErrorName[]).sort(
  (a, b) => DecodeError[b] - DecodeError[a],
);

/** The stable name of a code: one of the names above, `ok` for a non-negative result, else `unknown`. */
export function decodeErrorName(code: number): DecodeErrorName | 'ok' | 'unknown' {
  if (code >= 0) return 'ok';
  return DECODE_ERROR_NAMES[-code - 1] ?? 'unknown';
}

/** True when `code` is one of the codes above. */
export function isDecodeError(code: number): boolean {
  return Number.isInteger(code) && code < 0 && -code <= DECODE_ERROR_NAMES.length;
}

/**
 * Decoder flags (a bitmask; 0 is the strict default).
 * DECODE_NO_VERIFY: skip checksum verification (the caller trusts the source, e.g. its own TUN).
 * DECODE_QUOTED: the header is quoted inside an ICMP error, so the packet behind it may be cut
 * short: length fields may point past the end and checksums are not verified; only the header
 * itself must be present.
 */
export const DECODE_NO_VERIFY = 1;
export const DECODE_QUOTED = 2;

/** Where a function reports several lengths (e.g. one per fragment): `number[]` or a typed array. */
export interface LengthSink {
  [index: number]: number;
}
