/**
 * ed25519 key pairs in OpenSSH's formats, made with node's crypto, for the PRR's host key and the
 * SMAP's client key.
 *
 * Not ssh2.utils.generateKeyPairSync: it writes the 32-byte public key as if it were an mpint, so
 * about one key in 256 (public key starting with a zero byte) comes out 31 bytes long and neither
 * OpenSSH, dropbear nor ssh2 itself can read it back.
 *
 * openssh-key-v1, unencrypted (PROTOCOL.key in OpenSSH):
 *   "openssh-key-v1\0" string("none") string("none") string("") uint32(1) string(public blob)
 *   string(uint32 check, uint32 check, string("ssh-ed25519"), string(pub 32),
 *          string(seed 32 || pub 32), string(comment), padding 1, 2, 3 ... to 8 bytes)
 */
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';

const TYPE = 'ssh-ed25519';

function sshString(b: Buffer | string): Buffer {
  const body = typeof b === 'string' ? Buffer.from(b) : b;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  return Buffer.concat([len, body]);
}

export interface OpenSshKeyPair {
  /** `-----BEGIN OPENSSH PRIVATE KEY-----` text. */
  private: string;
  /** `ssh-ed25519 AAAA... comment` (no newline). */
  public: string;
  /** OpenSSH SHA256 fingerprint of the public key. */
  fingerprint: string;
}

/** The SSH wire form of an ed25519 public key. */
export function ed25519PublicBlob(pub: Buffer): Buffer {
  return Buffer.concat([sshString(TYPE), sshString(pub)]);
}

/** OpenSSH's fingerprint of a public key blob: `SHA256:` and unpadded base64. */
export function sshFingerprint(publicBlob: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(publicBlob).digest('base64').replace(/=+$/, '');
}

/** A new ed25519 key pair in OpenSSH formats. */
export function generateEd25519(comment: string): OpenSshKeyPair {
  // DER straight out of the key generation job. Not KeyObject.export({ format: 'jwk' }): on Node 20
  // that can deadlock when a GC during the export destroys the finished key-generation job, which
  // takes the same mutex (seen here: the process hung in futex_wait under ExportJWKEdKey).
  const { privateKey, publicKey } = generateKeyPairSync('ed25519', {
    privateKeyEncoding: { format: 'der', type: 'pkcs8' },
    publicKeyEncoding: { format: 'der', type: 'spki' },
  });
  // PKCS#8 for Ed25519 is 16 bytes of prefix and the 32-byte seed; SPKI is 12 bytes and the key.
  if (privateKey.length !== 48 || publicKey.length !== 44) throw new Error('unexpected Ed25519 DER encoding');
  const seed = Buffer.from(privateKey.subarray(16));
  const pub = Buffer.from(publicKey.subarray(12));
  const blob = ed25519PublicBlob(pub);
  const check = randomBytes(4);
  let priv = Buffer.concat([check, check, sshString(TYPE), sshString(pub), sshString(Buffer.concat([seed, pub])), sshString(comment)]);
  const pad = (8 - (priv.length % 8)) % 8;
  priv = Buffer.concat([priv, Buffer.from(Array.from({ length: pad }, (_, i) => i + 1))]);
  const body = Buffer.concat([
    Buffer.from('openssh-key-v1\0'),
    sshString('none'), sshString('none'), sshString(''),
    Buffer.from([0, 0, 0, 1]),
    sshString(blob),
    sshString(priv),
  ]);
  const b64 = body.toString('base64').replace(/.{70}/g, '$&\n').replace(/\n$/, '');
  return {
    private: `-----BEGIN OPENSSH PRIVATE KEY-----\n${b64}\n-----END OPENSSH PRIVATE KEY-----\n`,
    public: `${TYPE} ${blob.toString('base64')} ${comment}`,
    fingerprint: sshFingerprint(blob),
  };
}
