/**
 * Every protocol number, header length and field offset the codecs use, named once.
 * Offsets are relative to the start of their own header.
 */

// IP protocol numbers (IANA "Assigned Internet Protocol Numbers").
export const PROTO_HOPOPTS = 0;
export const PROTO_ICMP = 1;
export const PROTO_IPIP = 4; // IPv4 encapsulation: the tunnel's next header (RFC 2473)
export const PROTO_TCP = 6;
export const PROTO_UDP = 17;
export const PROTO_IPV6 = 41;
export const PROTO_ROUTING = 43;
export const PROTO_FRAGMENT = 44;
export const PROTO_ESP = 50;
export const PROTO_AH = 51;
export const PROTO_ICMPV6 = 58;
export const PROTO_NONE = 59;
export const PROTO_DSTOPTS = 60;
export const PROTO_MH = 135;
export const PROTO_HIP = 139;
export const PROTO_SHIM6 = 140;

// IPv4 header (RFC 791).
export const IPV4_MIN_HLEN = 20;
export const IPV4_MAX_HLEN = 60;
export const IPV4_OFF_VER_IHL = 0;
export const IPV4_OFF_TOS = 1;
export const IPV4_OFF_TOTAL_LEN = 2;
export const IPV4_OFF_ID = 4;
export const IPV4_OFF_FRAG = 6; // flags (3 bits) + fragment offset (13 bits, 8-byte units)
export const IPV4_OFF_TTL = 8;
export const IPV4_OFF_PROTO = 9;
export const IPV4_OFF_CSUM = 10;
export const IPV4_OFF_SRC = 12;
export const IPV4_OFF_DST = 16;
export const IPV4_FLAG_DF = 0x4000;
export const IPV4_FLAG_MF = 0x2000;
export const IPV4_FRAG_OFFSET_MASK = 0x1fff;

// IPv6 header (RFC 8200).
export const IPV6_HLEN = 40;
export const IPV6_OFF_VER_TC_FL = 0;
export const IPV6_OFF_PAYLOAD_LEN = 4;
export const IPV6_OFF_NEXT = 6;
export const IPV6_OFF_HOP_LIMIT = 7;
export const IPV6_OFF_SRC = 8;
export const IPV6_OFF_DST = 24;
export const IPV6_FRAG_HLEN = 8;
export const IPV6_MIN_MTU = 1280;

// UDP (RFC 768).
export const UDP_HLEN = 8;
export const UDP_OFF_SRC_PORT = 0;
export const UDP_OFF_DST_PORT = 2;
export const UDP_OFF_LEN = 4;
export const UDP_OFF_CSUM = 6;

// TCP (RFC 9293).
export const TCP_MIN_HLEN = 20;
export const TCP_OFF_SRC_PORT = 0;
export const TCP_OFF_DST_PORT = 2;
export const TCP_OFF_SEQ = 4;
export const TCP_OFF_ACK = 8;
export const TCP_OFF_DATA_OFF = 12;
export const TCP_OFF_FLAGS = 13;
export const TCP_OFF_WINDOW = 14;
export const TCP_OFF_CSUM = 16;
export const TCP_OFF_URG = 18;
export const TCP_FLAG_FIN = 0x01;
export const TCP_FLAG_SYN = 0x02;
export const TCP_FLAG_RST = 0x04;
export const TCP_FLAG_PSH = 0x08;
export const TCP_FLAG_ACK = 0x10;
export const TCP_FLAG_URG = 0x20;
export const TCP_OPT_EOL = 0;
export const TCP_OPT_NOP = 1;
export const TCP_OPT_MSS = 2;

// ICMPv4 (RFC 792, RFC 1191).
export const ICMP4_HLEN = 8;
export const ICMP4_OFF_TYPE = 0;
export const ICMP4_OFF_CODE = 1;
export const ICMP4_OFF_CSUM = 2;
export const ICMP4_OFF_ID = 4; // echo identifier
export const ICMP4_OFF_SEQ = 6; // echo sequence
export const ICMP4_OFF_MTU = 6; // next-hop MTU in Fragmentation Needed (RFC 1191)
export const ICMP4_ECHO_REPLY = 0;
export const ICMP4_DEST_UNREACH = 3;
export const ICMP4_SOURCE_QUENCH = 4;
export const ICMP4_REDIRECT = 5;
export const ICMP4_ECHO_REQUEST = 8;
export const ICMP4_TIME_EXCEEDED = 11;
export const ICMP4_PARAM_PROBLEM = 12;
export const ICMP4_UNREACH_NET = 0;
export const ICMP4_UNREACH_HOST = 1;
export const ICMP4_UNREACH_PROTO = 2;
export const ICMP4_UNREACH_PORT = 3;
export const ICMP4_UNREACH_FRAG_NEEDED = 4;
export const ICMP4_UNREACH_ADMIN = 13;
export const ICMP4_TTL_EXCEEDED_TRANSIT = 0;
export const ICMP4_FRAG_REASSEMBLY_EXCEEDED = 1;

// ICMPv6 (RFC 4443).
export const ICMP6_HLEN = 8;
export const ICMP6_OFF_TYPE = 0;
export const ICMP6_OFF_CODE = 1;
export const ICMP6_OFF_CSUM = 2;
export const ICMP6_OFF_ID = 4;
export const ICMP6_OFF_SEQ = 6;
export const ICMP6_OFF_MTU = 4; // 32-bit MTU in Packet Too Big
export const ICMP6_OFF_POINTER = 4; // 32-bit pointer in Parameter Problem
export const ICMP6_DEST_UNREACH = 1;
export const ICMP6_PACKET_TOO_BIG = 2;
export const ICMP6_TIME_EXCEEDED = 3;
export const ICMP6_PARAM_PROBLEM = 4;
export const ICMP6_ECHO_REQUEST = 128;
export const ICMP6_ECHO_REPLY = 129;

// Tunnel arithmetic.
export const TUNNEL_OVERHEAD = IPV6_HLEN; // IPv4-in-IPv6 adds one IPv6 header, no options

// Added with the codecs: fields and limits the first list did not name.
export const IPV4_VERSION = 4;
export const IPV6_VERSION = 6;
export const IPV4_OPT_EOL = 0; // RFC 791 option types
export const IPV4_OPT_NOP = 1;
export const IPV4_OPT_COPIED = 0x80; // "copied" flag: the option goes into every fragment
export const IPV6_EXT_OFF_NEXT = 0; // every extension header starts with next header ...
export const IPV6_EXT_OFF_LEN = 1; // ... and (except Fragment) a length byte
export const IPV6_FRAG_OFF_OFFSET = 2; // fragment offset (13 bits, 8-byte units) + M flag
export const IPV6_FRAG_OFF_ID = 4;
export const IPV6_FRAG_OFFSET_MASK = 0xfff8;
export const IPV6_FRAG_FLAG_M = 0x0001;
export const TCP_MAX_HLEN = 60;
export const TCP_OPT_MSS_LEN = 4;
export const ICMP4_ERROR_MAX_LEN = 576; // RFC 1812 §4.3.2.3: an ICMP error datagram's size cap
export const ICMP6_ERROR_MAX_LEN = IPV6_MIN_MTU; // RFC 4443 §2.4 (c)
export const ICMP6_INFO_MIN = 128; // ICMPv6 types below this are errors (RFC 4443 §2.1)
