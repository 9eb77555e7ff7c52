"""What the tests, the demo and the benchmarks share: test helpers, never tests.

- :mod:`.repo`                  the repository's paths, events/ samples, functions/ handlers loaded as Lambda would
- :mod:`.tools`                 the node-simulation tools, checked (and installed) before the suite runs
- :mod:`.moto_server`           a moto server on loopback, reached over HTTP
- :mod:`.moto_eks_updates`      our extension of moto: EKS node group updates, launch template versions
- :mod:`.moto_lambda_handlers`  our bridge: Lambda Invoke on the moto server runs a Python handler in-process
- :mod:`.engine_world`          the AWS side the engine works on (VPC, clusters, node groups, parameter, alarm topic)
- :mod:`.rollout`               starting a rollout through dispatch and waiting for its execution
- :mod:`.sfn_clock`             fast-forwards moto's Step Functions engine clock (Retry sleeps, Wait states)
- :mod:`.rules`                 the template's EventBridge rules installed on the moto server
- :mod:`.cfn_template`          template.yaml resolved for one set of parameter values
- :mod:`.cli`                   the `eks-proxy` command run as a process, its one-line refusals
- :mod:`.fake_k8s`              a fake Kubernetes API server (HTTPS, EKS token checked), the DescribeCluster seam
- :mod:`.ca_pem`                test CA certificates with any field set
- :mod:`.logs_insights`         an evaluator of the Logs Insights queries the template saves
- :mod:`.nodesim`               the node simulation in network namespaces

Importing a module here changes nothing: moto extensions are installed by an explicit ``install()`` call (the
``moto_server_session`` fixture makes it for the tests).
"""
