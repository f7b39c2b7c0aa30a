"""Operations: metrics endpoints, alert rules, dashboards, the image and the Helm chart, with real tools."""
