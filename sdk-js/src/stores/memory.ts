/**
 * An in-memory key store: keys live as long as the store object. For tests,
 * one-off jobs, or as a template for custom stores.
 * @packageDocumentation
 */
import { KeyStoreError } from '../errors.js';
import type { Cipher, KeyRequest, KeyStore, StoredKey } from '../types.js';

/**
 * A {@link KeyStore} in memory. Holds key-field values as map keys while it
 * lives (nothing is written anywhere); use a persistent store to share keys
 * between runs.
 */
export class MemoryKeyStore implements KeyStore {
  #groups = new Map<string, Cipher>();
  #keys = new Map<string, StoredKey>();
  #byLink = new Map<string, StoredKey>();

  /** Number of keys held. */
  get size(): number {
    return this.#keys.size;
  }

  /** {@inheritDoc KeyStore.getOrCreate} */
  async getOrCreate(group: string, cipher: Cipher, requests: KeyRequest[]): Promise<StoredKey[]> {
    const stored = this.#groups.get(group);
    if (stored && stored !== cipher) {
      throw new KeyStoreError('CIPHER_MISMATCH', `group ${JSON.stringify(group)} uses ${stored}, the job asks for ${cipher}`);
    }
    this.#groups.set(group, cipher);
    return requests.map((r) => {
      const id = `${group}\u0000${r.window}\u0000${r.keyValue}`;
      let k = this.#keys.get(id);
      if (!k) {
        k = { ...r.proposal, material: r.proposal.material.slice(), usesBefore: 0 };
        this.#keys.set(id, k);
        this.#byLink.set(k.keyLink, k);
      }
      return { ...k, material: k.material.slice() };
    });
  }

  /** {@inheritDoc KeyStore.recordUses} */
  async recordUses(uses: [string, number][]): Promise<void> {
    for (const [link, n] of uses) {
      const k = this.#byLink.get(link);
      if (k) k.usesBefore += n;
    }
  }
}
