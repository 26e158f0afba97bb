"""Bodies and answers of `/api/external/*`.

A body is the connection resource's decoded `data` (merged with form fields): the fields a look-up
needs are required (missing -> 422), every other key is ignored. Answers are lists of string maps
whose keys are the catalog's `x-fetch` `label_key`/`value_key`."""

from __future__ import annotations

from pydantic import BaseModel


class AmazonAdsConnection(BaseModel):
    location: str = "NA"
    client_id: str
    client_secret: str
    refresh_token: str


class FacebookAdsConnection(BaseModel):
    access_token: str
    app_id: str = ""
    app_secret: str = ""


class GoogleAdsConnection(BaseModel):
    client_id: str
    client_secret: str
    developer_token: str
    refresh_token: str


class RefreshTokenConnection(BaseModel):
    """Pinterest, Snapchat and LinkedIn connections: the app and a refresh token."""

    client_id: str
    client_secret: str
    refresh_token: str


class GraphTokenConnection(BaseModel):
    """Facebook and Instagram Insights connections: `refresh_token` holds a long-lived user token."""

    refresh_token: str
    client_id: str = ""
    client_secret: str = ""


class TiktokAdsConnection(BaseModel):
    access_token: str


class AmazonProfile(BaseModel):
    profile_id: str
    name: str
    account_id: str
    country_code: str


class FacebookAdAccount(BaseModel):
    account_id: str
    name: str


class GoogleAdsCustomer(BaseModel):
    customer_id: str
    name: str


class Named(BaseModel):
    """`{id, name}`: Pinterest/Snapchat/LinkedIn ad accounts, Facebook pages, Instagram accounts,
    LinkedIn organisations."""

    id: str
    name: str


class TiktokAdvertiser(BaseModel):
    advertiser_id: str
    name: str
