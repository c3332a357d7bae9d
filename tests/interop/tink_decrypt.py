#!/usr/bin/env python3
"""Independent check with Google Tink: decrypt every PII cell of a keylink output.

usage: tink_decrypt.py KEYS.csv ENCRYPTED.csv PLAIN.csv COLUMNS AAD [--kek-keyset FILE]
  COLUMNS  comma-separated PII column names
  AAD      none | field-name
Reads the keys output with Tink's own JSON keyset reader, decrypts each
non-empty PII cell with the keyset of its row's strmMeta.keyLink (Tink AEAD
for AesGcmKey, Deterministic AEAD for AesSivKey) and compares it with the
same cell of PLAIN.csv (the input). Exits non-zero on any difference.
"""
import csv, sys, base64
import tink
from tink import aead, daead, secret_key_access

def main():
    keys_path, enc_path, plain_path, columns, aad_mode = sys.argv[1:6]
    aead.register()
    daead.register()
    kek = None
    if len(sys.argv) > 6 and sys.argv[6] == "--kek-keyset":
        with open(sys.argv[7]) as f:
            kek_handle = tink.json_proto_keyset_format.parse(f.read(), secret_key_access.TOKEN)
        kek = kek_handle.primitive(aead.Aead)
    columns = columns.split(",")
    prims = {}
    with open(keys_path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if kek is not None:
                handle = tink.json_proto_keyset_format.parse_encrypted(row["encryptionKey"], kek, b"")
            else:
                handle = tink.json_proto_keyset_format.parse(row["encryptionKey"], secret_key_access.TOKEN)
            type_url = handle.keyset_info().key_info[0].type_url
            if type_url.endswith("AesSivKey"):
                p = handle.primitive(daead.DeterministicAead)
                prims[row["keyLink"]] = lambda ct, ad, p=p: p.decrypt_deterministically(ct, ad)
            else:
                p = handle.primitive(aead.Aead)
                prims[row["keyLink"]] = lambda ct, ad, p=p: p.decrypt(ct, ad)
    checked = 0
    with open(enc_path, newline="", encoding="utf-8") as fe, open(plain_path, newline="", encoding="utf-8-sig") as fp:
        enc_rows = csv.DictReader(fe)
        plain_rows = csv.DictReader(fp)
        for n, (e, p) in enumerate(zip(enc_rows, plain_rows), start=1):
            dec = prims[e["strmMeta.keyLink"]]
            for c in columns:
                if p[c] == "":
                    assert e[c] == "", f"row {n} column {c}: empty value was encrypted"
                    continue
                ad = c.encode() if aad_mode == "field-name" else b""
                got = dec(base64.b64decode(e[c]), ad).decode("utf-8")
                if got != p[c]:
                    print(f"row {n} column {c}: decrypted value differs", file=sys.stderr)
                    sys.exit(1)
                checked += 1
    print(f"tink decrypted {checked} cells")
    if checked == 0:
        sys.exit(1)

if __name__ == "__main__":
    main()
