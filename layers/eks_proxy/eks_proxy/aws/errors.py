"""AWS errors, read once: the error code of a `ClientError`, and SDK failures as our own one-line errors.

>>> from botocore.exceptions import ClientError
>>> error_code(ClientError({"Error": {"Code": "ResourceInUseException"}}, "UpdateNodegroupVersion"))
'ResourceInUseException'
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError


class NoRegion(Exception):
    """No AWS region is configured."""


class AwsUnavailable(Exception):
    """AWS could not be asked (no credentials, endpoint unreachable, access denied, any refusal): one line."""


def error_code(error: ClientError) -> str:
    """The AWS error code of a ClientError (e.g. `ResourceInUseException`)."""
    return str(error.response.get("Error", {}).get("Code", ""))


@contextmanager
def sdk_errors() -> Iterator[None]:
    """SDK failures inside the block become `NoRegion` or one-line `AwsUnavailable` errors (`code: message`)."""
    try:
        yield
    except NoRegionError:
        raise NoRegion("no AWS region") from None
    except NoCredentialsError:
        raise AwsUnavailable("no AWS credentials found (profile, environment or instance role)") from None
    except ClientError as error:
        code = error_code(error)
        message = str(error.response.get("Error", {}).get("Message", "")) or code
        raise AwsUnavailable(f"{code}: {message}") from None
    except BotoCoreError as error:
        raise AwsUnavailable(str(error)) from None
