"""A secret's value and its protection: from a declared source to a value and its fingerprint (`values`),
the AES-256-GCM envelope shared with the application (`envelope`), the binding of a ciphertext to its row
(`binding`), and the master keyring as the application reads it from its key folder (`keyfolder`).

May import tenants_file only.
"""
