"""The dvcbot gateway: channels, conversation router, web chat, health."""
