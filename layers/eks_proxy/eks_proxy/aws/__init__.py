"""Thin boto3 adapters: the only place that imports boto3/botocore or calls an AWS client method.

Each function takes a client as its first argument and returns domain types. `clients.AwsClients` creates the
clients lazily; `errors.error_code` reads a `ClientError`.
"""
