import t from 'tap';
import {
  DECODE_ERROR_NAMES,
  DecodeError,
  decodeErrorName,
  isDecodeError,
} from '../../common/codec/result.js';

t.test('the code table is stable: these names are counter labels', async (t) => {
  t.same(DECODE_ERROR_NAMES, [
    'truncated',
    'bad_version',
    'bad_ihl',
    'bad_total_length',
    'bad_checksum',
    'bad_ext_header',
    'fragment',
    'bad_data_offset',
    'bad_udp_length',
    'bad_option',
    'bad_icmp_type',
    'dont_fragment',
    'bad_mtu',
    'no_space',
    'bad_address',
  ]);
});

t.test('codes are distinct negative integers -1..-N, each named by decodeErrorName', async (t) => {
  const codes = Object.values(DecodeError);
  t.equal(new Set(codes).size, codes.length);
  for (const [name, code] of Object.entries(DecodeError)) {
    t.ok(Number.isInteger(code) && code < 0, `${name} is negative`);
    t.equal(decodeErrorName(code), name);
    t.ok(isDecodeError(code));
  }
  t.same([...codes].sort((a, b) => b - a), codes.map((_, i) => -i - 1));
});

t.test('non-codes', async (t) => {
  t.equal(decodeErrorName(0), 'ok');
  t.equal(decodeErrorName(1234), 'ok');
  t.equal(decodeErrorName(-1000), 'unknown');
  t.notOk(isDecodeError(0));
  t.notOk(isDecodeError(-1000));
  t.notOk(isDecodeError(-1.5));
});
