"""Rendering of reports: shared tables (``tables``), terminal (``text``), HTML (``html``), pictures (``figures``)."""
