"""Node simulation: a private-subnet EKS node, a proxy host and an "internet" host in network namespaces.

Building blocks (usable on their own, e.g. on loopback with ``netns=None``):

- :mod:`.pki`       a throw-away CA and server certificates (openssl)
- :mod:`.services`  tinyproxy, docker-registry with TLS, a fake IMDSv2; each a handle with ``url``/``port``/``stop()``
- :mod:`.image`     a tiny OCI image built in Python, pushed and pulled with skopeo
- :mod:`.netns`     namespaces, veth links, running code or commands inside a namespace
- :mod:`.boot`      boot user data the way cloud-init and nodeadm would, then derive the units' environment
- :mod:`.testbed`   the three-namespace topology wired together
"""
