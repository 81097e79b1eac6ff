/** The packet codecs: one module per header, re-exported here. */
export * from './constants.js';
export * from './result.js';
export * from './checksum.js';
export * from './ipv4.js';
export * from './ipv4frag.js';
export * from './ipv6.js';
export * from './udp.js';
export * from './tcp.js';
export * from './icmp4.js';
export * from './icmp6.js';
