"""Notification channels: webhook, e-mail, DingTalk and WeCom robots, MQTT, SMS."""
