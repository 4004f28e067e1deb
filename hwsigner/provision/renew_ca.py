"""Getting a renewal request signed: by any CA through a command, or by AWS Private CA.

    >>> import tempfile
    >>> from hwsigner.devpki import DevPki, new_key
    >>> from hwsigner.keys.file import FileKey
    >>> from hwsigner.provision.csr import build_csr, parse_subject
    >>> pki = DevPki.create(tempfile.mkdtemp())
    >>> request = build_csr(FileKey(new_key("ec-p256")), parse_subject("CN=device-0001"))
    >>> ca = f"-CA {pki.issuing_cert} -CAkey {pki.directory / 'issuing-ca.key'}"
    >>> pem = issue_with_command(f"openssl x509 -req {ca} -days 30 2>/dev/null", request.pem,
    ...                          validity_days=None)
    >>> pem.splitlines()[0]
    b'-----BEGIN CERTIFICATE-----'
    >>> pem = issue_with_pca("arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/x",
    ...                      request.pem, validity_days=90)            # doctest: +SKIP

Both return what the CA answered, unread: ``renew.read_issued`` parses and checks it.

A command runs through ``/bin/sh -c`` with the request (PEM) on stdin and
``HWSIGNER_VALIDITY_DAYS`` in its environment when a validity is asked for; it must print the
certificate (PEM), optionally followed by its chain, and exit 0 (``openssl x509 -req``,
``openssl ca``, ``step ca sign``, an EST or SCEP client). It inherits the environment except
the variables that hold the device's PIN or key passwords.

AWS Private CA is called through botocore: DescribeCertificateAuthority (for the CA's signing
algorithm), IssueCertificate, the ``certificate_issued`` waiter, GetCertificate. Credentials are
the ones given (the device's own Roles Anywhere session) or botocore's default chain; endpoint
overrides follow botocore (``AWS_ENDPOINT_URL_ACM_PCA``, ``AWS_ENDPOINT_URL``).
"""

from __future__ import annotations

import os
import re
import subprocess
from typing import Any

from ..credentials import Credentials
from ..errors import ConfigError, NetworkError, ServiceError, needs_extra

# The device's secrets are not the CA's business: they never reach the --exec command.
SECRET_VARIABLES = frozenset(
    {
        "HWSIGNER_PKCS11_PIN",
        "HWSIGNER_PKCS8_PASSWORD",
        "HWSIGNER_TPM_KEY_PASSWORD",
        "HWSIGNER_TPM_PARENT_PASSWORD",
    }
)
COMMAND_TIMEOUT = 600  # seconds: an EST client may wait for a CA operator, not for ever
_PCA_ARN = re.compile(
    r"arn:aws[a-z-]*:acm-pca:(?P<region>[a-z0-9-]+):\d{12}:certificate-authority/.+"
)
PCA_HINT = (
    "the caller needs acm-pca:DescribeCertificateAuthority, acm-pca:IssueCertificate and "
    "acm-pca:GetCertificate on the CA"
)


def last_line(text: str, limit: int = 200) -> str:
    """The last non-empty line of what a program or service said, as one safe printable line."""
    from .._safe import one_line

    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return one_line(lines[-1], limit) if lines else ""


def issue_with_command(command: str, request_pem: bytes, validity_days: int | None) -> bytes:
    """Run ``command`` with the request on stdin; its stdout when it exits 0."""
    env = {name: value for name, value in os.environ.items() if name not in SECRET_VARIABLES}
    if validity_days is not None:
        env["HWSIGNER_VALIDITY_DAYS"] = str(validity_days)
    try:
        done = subprocess.run(
            ["/bin/sh", "-c", command],
            input=request_pem,
            capture_output=True,
            env=env,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ConfigError(
            f"the --exec command did not finish within {COMMAND_TIMEOUT} s; nothing was changed"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot run /bin/sh: {exc.strerror}; nothing was changed") from None
    if done.returncode != 0:
        said = last_line(done.stderr.decode(errors="replace"))
        raise ConfigError(
            f"the --exec command exited with status {done.returncode}"
            + (f" ({said})" if said else "")
            + "; nothing was changed",
            hint="run the command by hand with a request on stdin (hwsigner csr ... | COMMAND)",
        )
    return done.stdout


def pca_region(ca_arn: str) -> str:
    match = _PCA_ARN.fullmatch(ca_arn.strip())
    if not match:
        raise ConfigError(
            f"--pca-arn is not a Private CA ARN: {ca_arn!r}",
            hint="expected arn:aws:acm-pca:REGION:ACCOUNT:certificate-authority/ID",
        )
    return match["region"]


def issue_with_pca(
    ca_arn: str,
    request_pem: bytes,
    *,
    validity_days: int,
    template_arn: str | None = None,
    credentials: Credentials | None = None,
) -> bytes:
    """IssueCertificate, wait until issued, GetCertificate: the certificate and its chain."""
    region = pca_region(ca_arn)
    with needs_extra("boto3"):
        import botocore.exceptions
        import botocore.session
    keys: dict[str, str] = {}
    if credentials is not None:
        keys = {
            "aws_access_key_id": credentials.access_key_id,
            "aws_secret_access_key": credentials.secret_access_key,
            "aws_session_token": credentials.session_token,
        }
    try:
        client = botocore.session.get_session().create_client("acm-pca", region_name=region, **keys)
        return _issue(client, ca_arn, request_pem, validity_days, template_arn)
    except botocore.exceptions.ClientError as exc:
        raise pca_error(exc) from None
    except botocore.exceptions.NoCredentialsError:
        raise ConfigError(
            "no AWS credentials for the Private CA call; nothing was changed",
            hint="pass --trust-anchor-arn, --profile-arn and --role-arn (the device's own "
            "session), or configure AWS credentials",
        ) from None
    except botocore.exceptions.WaiterError as exc:
        raise ServiceError(
            "WaiterError", f"{exc}; nothing was changed", status=0, hint=PCA_HINT
        ) from None
    except (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectionError) as e:
        raise NetworkError(f"cannot reach AWS Private CA: {e}; nothing was changed") from None
    except botocore.exceptions.BotoCoreError as exc:
        raise ConfigError(f"AWS Private CA call failed: {exc}; nothing was changed") from None


def _issue(
    client: Any, ca_arn: str, request_pem: bytes, validity_days: int, template_arn: str | None
) -> bytes:
    described = client.describe_certificate_authority(CertificateAuthorityArn=ca_arn)
    config = described["CertificateAuthority"]["CertificateAuthorityConfiguration"]
    params: dict[str, Any] = {
        "CertificateAuthorityArn": ca_arn,
        "Csr": request_pem,
        "SigningAlgorithm": config["SigningAlgorithm"],
        "Validity": {"Value": validity_days, "Type": "DAYS"},
    }
    if template_arn:
        params["TemplateArn"] = template_arn
    certificate_arn = client.issue_certificate(**params)["CertificateArn"]
    where = {"CertificateAuthorityArn": ca_arn, "CertificateArn": certificate_arn}
    client.get_waiter("certificate_issued").wait(**where)
    got = client.get_certificate(**where)
    return f"{got['Certificate'].strip()}\n{got.get('CertificateChain', '')}".encode()


def pca_error(exc: Any) -> ServiceError:
    """A botocore ``ClientError`` as hwsigner's ``ServiceError``."""
    error = exc.response.get("Error", {})
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    code = str(error.get("Code") or "Error")
    message = last_line(str(error.get("Message") or ""))
    operation = getattr(exc, "operation_name", "the Private CA call")
    return ServiceError(
        code, f"{operation}: {message}; nothing was changed", status=status, hint=PCA_HINT
    )


__all__ = ["issue_with_command", "issue_with_pca", "last_line", "pca_region"]
