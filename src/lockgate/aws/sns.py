"""Alerts published to an Amazon SNS topic, for its email, SMS, chat and queue subscribers.

The message is the alert as JSON (what :meth:`Alert.as_dict` gives the webhook too); the subject,
which email subscribers read first, is the verdict and the endpoint, cut to what SNS accepts.
Topics ending in ``.fifo`` get the endpoint as message group and the run as deduplication id,
so a monitoring run retried after a crash does not alert twice.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
)

from lockgate.aws.errors import unanswered
from lockgate.errors import ConfigError, LockgateError
from lockgate.pipelines.monitoring.alerts import Alert

if TYPE_CHECKING:
    from lockgate.pipelines.monitoring.alerts import Notifier

SUBJECT_LIMIT = 99
"""SNS takes subjects of fewer than 100 characters, without line breaks or control characters."""
MESSAGE_LIMIT = 256 * 1024
"""SNS takes messages up to 256 KiB of UTF-8."""
LISTED_FEATURES = 100
"""Drifted features listed in a message that would otherwise pass MESSAGE_LIMIT."""

_TOPIC_ARN = re.compile(r"arn:aws[a-z-]*:sns:([a-z0-9-]+):(\d{12}):([\w-]{1,251}(?:\.fifo)?)")
_NOT_FOUND = frozenset({"NotFound", "NotFoundException"})
_DENIED = frozenset({"AuthorizationError", "AccessDenied", "AccessDeniedException"})
_BAD_CREDENTIALS = frozenset(
    {"InvalidClientTokenId", "ExpiredToken", "ExpiredTokenException", "SignatureDoesNotMatch"}
)


class SnsError(LockgateError):
    """SNS refused or failed a publish; the message names the topic and the AWS error code."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


class SnsNotifier:
    """Publishes alerts to one SNS topic through an injected boto3 SNS client.

    Args:
        client: a boto3 ``sns`` client in the topic's region.
        topic_arn: ``arn:aws:sns:<region>:<account>:<name>``.

    Raises:
        ConfigError: ``topic_arn`` is not an SNS topic ARN.
    """

    def __init__(self, client: Any, topic_arn: str) -> None:
        match = _topic(topic_arn)
        self.topic_arn = match.group(0)
        self.region, _, self.topic_name = match.groups()
        self._client = client

    def publish(self, subject: str, message: str, *, group: str = "", dedup: str = "") -> str:
        """Publish ``message`` with ``subject`` (made SNS-safe); the SNS message id.

        ``group`` and ``dedup`` are the message group and deduplication ids a FIFO topic needs;
        a standard topic ignores them.

        Raises:
            SnsError: SNS refused the publish or could not be reached.
        """
        params: dict[str, Any] = {
            "TopicArn": self.topic_arn,
            "Subject": sns_subject(subject),
            "Message": message,
        }
        if self.topic_name.endswith(".fifo"):
            params["MessageGroupId"] = group or "lockgate"
            params["MessageDeduplicationId"] = hashlib.sha256(
                (dedup or message).encode()
            ).hexdigest()
        try:
            response = self._client.publish(**params)
        except ClientError as exc:
            raise self._refused(exc) from exc
        except BotoCoreError as exc:
            raise self._unanswered(exc) from exc
        return str(response.get("MessageId", ""))

    def notify(self, alert: Alert) -> str:
        """Publish the alert as JSON; one line on what happened (never raises for SNS)."""
        subject = f"lockgate {alert.env}: {alert.verdict} on {alert.endpoint}"
        try:
            message_id = self.publish(
                subject,
                alert_message(alert),
                group=alert.endpoint,
                dedup=f"{alert.endpoint}/{alert.run}",
            )
        except SnsError as exc:
            return f"SNS topic {self.topic_name}: not published: {exc}"
        return f"SNS topic {self.topic_name}: published (message id {message_id})"

    def __repr__(self) -> str:
        return f"SnsNotifier({self.topic_arn!r})"

    def _refused(self, exc: Any) -> SnsError:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        detail = " ".join(str(error.get("Message", "")).split())
        if code in _NOT_FOUND:
            hint = "check sns_topic_arn in [monitor] of lockgate.toml: the topic does not exist"
        elif code in _DENIED:
            hint = "allow sns:Publish on it (and the KMS key's use if the topic is encrypted)"
        elif code in _BAD_CREDENTIALS:
            hint = "refresh the AWS credentials (aws sso login) or check AWS_PROFILE"
        elif code.startswith("KMS"):
            hint = "the topic's KMS key refused; allow kms:GenerateDataKey and kms:Decrypt"
        else:
            hint = detail or "see the AWS error code"
        return SnsError(f"SNS refused to publish to {self.topic_arn} ({code}): {hint}", code)

    def _unanswered(self, exc: BotoCoreError) -> SnsError:
        return SnsError(
            unanswered(
                exc,
                doing=f"to publish to {self.topic_arn}",
                reach=f"SNS in {self.region}",
                failed=f"publishing to {self.topic_arn}",
            )
        )


def sns_notifier(topic_arn: str) -> SnsNotifier:
    """An :class:`SnsNotifier` with a client from the environment, in the topic's region.

    Raises:
        ConfigError: ``topic_arn`` is not an SNS topic ARN, or boto3 cannot make a client.
    """
    region = _topic(topic_arn).group(1)
    try:
        client = boto3.session.Session().client("sns", region_name=region)
    except BotoCoreError as exc:
        raise ConfigError(f"cannot create an SNS client for {region}: {exc}") from None
    return SnsNotifier(client, topic_arn)


def _topic(topic_arn: str) -> re.Match[str]:
    match = _TOPIC_ARN.fullmatch(topic_arn.strip())
    if match is None:
        raise ConfigError(
            f"sns_topic_arn '{topic_arn}' is not an SNS topic ARN; write "
            "arn:aws:sns:<region>:<account id>:<topic name> in [monitor] of lockgate.toml"
        )
    return match


def sns_subject(text: str) -> str:
    """``text`` as an SNS subject: ASCII, one line, fewer than 100 characters."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    line = " ".join("".join(ch if ch.isprintable() else " " for ch in ascii_text).split())
    if len(line) > SUBJECT_LIMIT:
        line = line[: SUBJECT_LIMIT - 3].rstrip() + "..."
    return line or "lockgate alert"


def alert_message(alert: Alert) -> str:
    """The alert as JSON, its feature list shortened if the whole would pass MESSAGE_LIMIT."""
    data = alert.as_dict()
    message = json.dumps(data)
    if len(message.encode()) > MESSAGE_LIMIT:
        data["drifted_features"] = data["drifted_features"][:LISTED_FEATURES]
        data["drifted_features_total"] = len(alert.drifted)
        message = json.dumps(data)
    return message


if TYPE_CHECKING:  # mypy proves the adapter implements the protocol

    def _implements(notifier: SnsNotifier) -> Notifier:
        return notifier
