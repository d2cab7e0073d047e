"""What a target receives for one certificate version: leaf, intermediates and maybe the key."""

from deployments.drivers import Bundle, DriverError
from inventory.models import CertificateVersion
from inventory.pki import formats
from inventory.pki import keys as pki_keys


def intermediates(version: CertificateVersion) -> list:
    """The version's issuer pool rows between the leaf and the root (a self-signed root left out).

    Servers send these after the leaf; sending the root only wastes bytes in every handshake.
    """
    links = version.links.select_related("issuer").order_by("position")
    return [link.issuer for link in links if not link.issuer.self_signed]


def bundle_for(version: CertificateVersion, *, include_key: bool, fetch_url=None) -> Bundle:
    """The bundle for version: fullchain = leaf + intermediates; the key only if include_key.

    include_key=True with no key in the inventory is a permanent DriverError: no retry can
    make a key appear.
    """
    key_pem = None
    if include_key:
        if version.private_key_id is None:
            raise DriverError(
                f"The inventory has no private key for version {version.sha256[:16]}… of "
                f"“{version.certificate.name}”, and this target needs one: upload the key "
                "(KeyCustodian) or deploy to a target that does not take keys.",
                permanent=True,
            )
        key_pem = pki_keys.private_key_pem(version.private_key.unseal())
    chain = [issuer.to_x509() for issuer in intermediates(version)]
    return Bundle(
        name=version.certificate.name,
        sha256=version.sha256,
        cert_pem=formats.pem(version.to_x509()),
        chain_pem=formats.pem_many(chain),
        key_pem=key_pem,
        fetch_url=fetch_url,
    )
