"""What botocore raises when AWS never answered, as one line that says what to do.

Each adapter wraps the line in its own exception type (StoreError, SageMakerError, SnsError).
"""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, NoCredentialsError, PartialCredentialsError
from botocore.exceptions import ConnectionError as NetworkError


def unanswered(exc: BotoCoreError | Exception, *, doing: str, reach: str, failed: str) -> str:
    """The message for ``exc``, a call that got no answer from AWS.

    Args:
        doing: what needed credentials ("to publish to arn:..."), after "no AWS credentials".
        reach: what could not be reached ("SNS in eu-west-1"), after "cannot reach".
        failed: what failed otherwise ("publishing to arn:..."), before "failed".
    """
    reason = " ".join(str(exc).split())
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return (
            f"no AWS credentials {doing}: set AWS_PROFILE or "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or run aws sso login)"
        )
    if isinstance(exc, NetworkError):
        return (
            f"cannot reach {reach} ({reason}): check AWS_ENDPOINT_URL, the region and the network"
        )
    return f"{failed} failed: {reason}"
