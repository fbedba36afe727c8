/**
 * Sealed secrets, format `v2` (README, "Sealed secrets"), the same bytes as the Rust
 * `secrets` crate makes and opens: HPKE (RFC 9180) base mode with DHKEM(X25519,
 * HKDF-SHA256), HKDF-SHA256 and AES-256-GCM; `info` = `tenant-saga secrets v2`;
 * `aad` = `<saga id>/<field>`; written `v2:<key id>:` + standard base64 of `enc ‖ ct`.
 * The web app seals the signup's password to the services' public key
 * (`SAGA_PUBLIC_KEY`) and opens the admin's API secret with its own private key.
 */
import { Aes256Gcm, CipherSuite, HkdfSha256 } from "@hpke/core";
import { DhkemX25519HkdfSha256 } from "@hpke/dhkem-x25519";

/** A key as the HPKE suite holds it. */
type CryptoKey = Awaited<ReturnType<CipherSuite["kem"]["deserializePublicKey"]>>;

import { ConfigError, SealedValueError } from "./errors.js";

const PREFIX = "v2:";
const INFO = new TextEncoder().encode("tenant-saga secrets v2");
/** X25519's encapsulated key. */
const ENC_LEN = 32;
/** AES-256-GCM's tag. */
const TAG_LEN = 16;
const KEY_ID = /^[A-Za-z0-9._-]{1,32}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const suite = new CipherSuite({
  kem: new DhkemX25519HkdfSha256(),
  kdf: new HkdfSha256(),
  aead: new Aes256Gcm(),
});

/** What a sealed value holds: part of its associated data. */
export type SealedField = "admin_password" | "db_password" | "administrator_password" | "api_secret";

/** `<saga id>/<field>`, the saga id lowercase with hyphens, as the Rust side binds it. */
function aad(sagaId: string, field: SealedField): Uint8Array {
  const id = sagaId.toLowerCase();
  if (!UUID.test(id)) {
    throw new ConfigError("invalid_argument", `saga id ${JSON.stringify(sagaId)} is not a UUID`);
  }
  return new TextEncoder().encode(`${id}/${field}`);
}

/** Splits `<key id>:<standard base64 of 32 bytes>`. */
function idAndBytes(entry: string, what: string): { id: string; bytes: Uint8Array } {
  const at = entry.indexOf(":");
  const id = entry.slice(0, at).trim();
  const text = entry.slice(at + 1).trim();
  if (at < 0 || !KEY_ID.test(id)) {
    throw new ConfigError(
      "invalid_key",
      `${what} must be written \`<key id>:<32 bytes in standard base64>\`, the id 1 to 32 of letters, digits, '.', '_', '-'`,
    );
  }
  const bytes = Buffer.from(text, "base64");
  if (bytes.length !== 32 || bytes.toString("base64") !== text) {
    throw new ConfigError("invalid_key", `${what} of key id ${id}: the key must be 32 bytes in standard base64`);
  }
  return { id, bytes: new Uint8Array(bytes) };
}

/**
 * A public key values are sealed to, with its id: the services' `SAGA_PUBLIC_KEY`
 * (what `saga-keys public` prints), `<key id>:<base64 of the X25519 public key>`.
 */
export class PublicKey {
  private constructor(
    /** The key's id, written into every value sealed to it. */
    readonly id: string,
    private readonly key: CryptoKey,
  ) {}

  /** Reads `<key id>:<base64>`; throws {@link ConfigError} `invalid_key`. */
  static async parse(text: string): Promise<PublicKey> {
    const { id, bytes } = idAndBytes(text, "a public key");
    try {
      return new PublicKey(id, await suite.kem.deserializePublicKey(bytes));
    } catch (cause) {
      throw new ConfigError("invalid_key", `public key ${id} is not an X25519 key`, { cause });
    }
  }

  /** Seals `secret` for field `field` of saga `sagaId`, with a fresh ephemeral key. */
  async seal(secret: string, sagaId: string, field: SealedField): Promise<string> {
    const bound = aad(sagaId, field);
    let sealed;
    try {
      sealed = await suite.seal(
        { recipientPublicKey: this.key, info: INFO },
        new TextEncoder().encode(secret),
        bound,
      );
    } catch (cause) {
      // A low-order point (all zeros, …) gives an all-zero shared secret, which HPKE refuses.
      throw new ConfigError("invalid_key", `nothing can be sealed to public key ${this.id}`, { cause });
    }
    const blob = Buffer.concat([Buffer.from(sealed.enc), Buffer.from(sealed.ct)]);
    return `${PREFIX}${this.id}:${blob.toString("base64")}`;
  }
}

/**
 * The web app's private keys, newest first (`saga-keys new <id>` prints an entry as
 * its `private` line): comma-separated `<key id>:<base64 of 32 random bytes>`. Every
 * key opens; several are held while a key is rotated (README, "Keys").
 */
export class Keyring {
  private constructor(private readonly keys: ReadonlyMap<string, CryptoKey>) {}

  /** Reads the keyring's text; throws {@link ConfigError} `invalid_key`. */
  static async parse(text: string): Promise<Keyring> {
    const keys = new Map<string, CryptoKey>();
    for (const entry of text.split(",").filter((e) => e.trim() !== "")) {
      const { id, bytes } = idAndBytes(entry, "each entry of the web app's keyring");
      if (keys.has(id)) {
        throw new ConfigError("invalid_key", `the keyring names key id ${id} twice`);
      }
      try {
        keys.set(id, await suite.kem.deserializePrivateKey(bytes));
      } catch (cause) {
        throw new ConfigError("invalid_key", `private key ${id} is not an X25519 key`, { cause });
      }
    }
    if (keys.size === 0) {
      throw new ConfigError("invalid_key", "the web app's keyring holds no key (`<key id>:<base64>`, ...)");
    }
    return new Keyring(keys);
  }

  /** The ids of the keys held (not secret). */
  get ids(): string[] {
    return [...this.keys.keys()];
  }

  /**
   * Opens a value sealed to one of these keys for field `field` of saga `sagaId`;
   * throws {@link SealedValueError}.
   */
  async open(sealed: string, sagaId: string, field: SealedField): Promise<string> {
    const bound = aad(sagaId, field);
    const rest = sealed.startsWith(PREFIX) ? sealed.slice(PREFIX.length) : null;
    const at = rest?.indexOf(":") ?? -1;
    if (rest === null || at < 0) {
      throw new SealedValueError("malformed", "a sealed value must be written `v2:<key id>:<base64>`");
    }
    const id = rest.slice(0, at);
    const key = this.keys.get(id);
    if (key === undefined) {
      throw new SealedValueError("unknown_key", `sealed value names key id ${JSON.stringify(id)}, which this keyring does not hold`);
    }
    const blob = Buffer.from(rest.slice(at + 1), "base64");
    if (blob.length < ENC_LEN + TAG_LEN) {
      throw new SealedValueError("malformed", "a sealed value is too short to hold a key and a tag");
    }
    try {
      const clear = await suite.open(
        { recipientKey: key, enc: blob.subarray(0, ENC_LEN), info: INFO },
        blob.subarray(ENC_LEN),
        bound,
      );
      return new TextDecoder("utf-8", { fatal: true }).decode(clear);
    } catch (cause) {
      throw new SealedValueError(
        "cannot_open",
        `the value sealed to key ${id} does not open for ${sagaId}/${field} (another key, saga or field)`,
        { cause },
      );
    }
  }
}
