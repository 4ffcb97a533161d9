"""The admin console's static files (HTML, ES modules, CSS), served by gateway.api.console_ui."""
