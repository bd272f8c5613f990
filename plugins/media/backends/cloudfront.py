"""CloudFront signed URLs with a canned policy (the resource and an expiry), signed RSA-SHA1 as
CloudFront requires; botocore's `CloudFrontSigner` builds the policy, the URL-safe base64
(`+` → `-`, `=` → `_`, `/` → `~`) and the query string."""
from __future__ import annotations

from datetime import datetime, timezone
from urllib.parse import quote

from botocore.signers import CloudFrontSigner
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa


class CloudFront:
    def __init__(self, base_url: str, key_pair_id: str, private_key_pem: bytes) -> None:
        key = serialization.load_pem_private_key(private_key_pem, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("MEDIA_CDN_PRIVATE_KEY_FILE does not hold an RSA private key")
        self.base_url = base_url.rstrip("/")
        self._signer = CloudFrontSigner(key_pair_id, lambda message: key.sign(message, padding.PKCS1v15(), hashes.SHA1()))

    def url(self, key: str) -> str:
        return f"{self.base_url}/{quote(key)}"

    def signed_url(self, key: str, expires: int) -> str:
        return self._signer.generate_presigned_url(self.url(key), date_less_than=datetime.fromtimestamp(expires, timezone.utc))
