{{/* Alert rules, identical to deploy/monitoring/prometheusrule.yaml spec.groups (tested). */}}
{{- define "doorman.alertGroups" -}}
{{`- name: doorman
  rules:
    - alert: DoormanDataplaneNotProgrammed
      expr: doorman_config_version != on(namespace) group_left() max by (namespace) (doorman_controller_snapshot_version)
      for: 5m
      labels: {severity: warning}
      annotations:
        summary: "Dataplane {{ $labels.instance }} runs an old routing state"
        description: "doorman_config_version on {{ $labels.instance }} has differed from the controller's snapshot version for 5 minutes."
    - alert: DoormanConfigRejected
      expr: increase(doorman_config_updates_total{result="rejected"}[10m]) > 0
      labels: {severity: warning}
      annotations:
        summary: "Dataplane {{ $labels.instance }} rejected a routing update (NACK)"
        description: "It keeps serving its last good state. See the controller's logs and the LoadBalancer's Programmed condition."
    - alert: DoormanBackendsDown
      expr: sum by (namespace, backend) (doorman_backend_up) == 0
      for: 2m
      labels: {severity: critical}
      annotations:
        summary: "Backend {{ $labels.backend }} is down on every dataplane"
        description: "Active health checks fail for {{ $labels.backend }} on all dataplanes."
    - alert: DoormanControllerNoLeader
      expr: max by (namespace) (doorman_controller_leader) < 1 or absent(doorman_controller_leader)
      for: 2m
      labels: {severity: critical}
      annotations:
        summary: "No doorman-controller replica holds the leader Lease"
        description: "Status and Events are not written while no replica leads (dataplanes keep being served)."
    - alert: DoormanControllerDown
      expr: max by (namespace) (up{job=~".*doorman-controller.*"}) < 1 or absent(up{job=~".*doorman-controller.*"})
      for: 5m
      labels: {severity: critical}
      annotations:
        summary: "No doorman-controller replica is scraped as up"
    - alert: DoormanCertificateExpiringSoon
      expr: min by (namespace, listener, certificate) (doorman_tls_certificate_expiry_timestamp_seconds) - time() < 14 * 86400
      for: 10m
      labels: {severity: warning}
      annotations:
        summary: "Certificate {{ $labels.certificate }} on listener {{ $labels.listener }} expires within 14 days"
        description: "Renew the Secret {{ $labels.certificate }}: the dataplanes serve the new certificate to new handshakes as soon as it changes."`}}
{{- end -}}
