"""AWS errors, read once: the error code of a `ClientError`.

>>> from botocore.exceptions import ClientError
>>> error_code(ClientError({"Error": {"Code": "ResourceInUseException"}}, "UpdateNodegroupVersion"))
'ResourceInUseException'
"""

from __future__ import annotations

from botocore.exceptions import ClientError


def error_code(error: ClientError) -> str:
    """The AWS error code of a ClientError (e.g. `ResourceInUseException`)."""
    return str(error.response.get("Error", {}).get("Code", ""))
