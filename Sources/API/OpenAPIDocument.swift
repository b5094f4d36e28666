/// The OpenAPI 3.1 description of the native API, served at `/openapi.json`.
/// Generated with docs/openapi.json by scripts/openapi.py (the binary needs
/// no resource bundle); an interop test checks that the two agree.
enum OpenAPIDocument {
    static let json = #"""
{
 "openapi": "3.1.0",
 "info": {
  "title": "Hikyaku API",
  "version": "1.0.0",
  "description": "Native HTTP API of the Hikyaku mail relay. Authenticate with 'Authorization: Bearer hk_…' (hikyaku apikey create). Errors are {\"error\": {\"code\", \"message\"}}. The SES v2 (/v2/email) and SendGrid v3 (/v3) subsets are described by those services."
 },
 "servers": [
  {
   "url": "/"
  }
 ],
 "security": [
  {
   "bearer": []
  }
 ],
 "components": {
  "securitySchemes": {
   "bearer": {
    "type": "http",
    "scheme": "bearer"
   }
  },
  "responses": {
   "BadRequest": {
    "description": "Malformed request",
    "content": {
     "application/json": {
      "schema": {
       "$ref": "#/components/schemas/Error"
      }
     }
    }
   },
   "Unauthorized": {
    "description": "Missing or wrong API key",
    "content": {
     "application/json": {
      "schema": {
       "$ref": "#/components/schemas/Error"
      }
     }
    }
   },
   "Forbidden": {
    "description": "The key's scope or the account does not allow this",
    "content": {
     "application/json": {
      "schema": {
       "$ref": "#/components/schemas/Error"
      }
     }
    }
   },
   "TooManyRequests": {
    "description": "Too many failed authentications, or over quota (see Retry-After)",
    "content": {
     "application/json": {
      "schema": {
       "$ref": "#/components/schemas/Error"
      }
     }
    }
   }
  },
  "schemas": {
   "Error": {
    "type": "object",
    "required": [
     "error"
    ],
    "properties": {
     "error": {
      "type": "object",
      "required": [
       "code",
       "message"
      ],
      "properties": {
       "code": {
        "type": "string"
       },
       "message": {
        "type": "string"
       },
       "request_id": {
        "type": "string"
       }
      }
     }
    }
   },
   "Address": {
    "oneOf": [
     {
      "type": "string",
      "pattern": "^([A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,30}@[A-Za-z0-9-]{1,20}(\\.[A-Za-z0-9-]{1,20}){1,3}|[A-Za-z0-9 ]{0,20}<[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,30}@[A-Za-z0-9-]{1,20}(\\.[A-Za-z0-9-]{1,20}){1,3}>)$",
      "description": "addr@example.com or Name <addr@example.com>",
      "examples": [
       "Shop <shop@acme.example>"
      ]
     },
     {
      "type": "object",
      "required": [
       "email"
      ],
      "properties": {
       "email": {
        "type": "string",
        "pattern": "^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,30}@[A-Za-z0-9-]{1,20}(\\.[A-Za-z0-9-]{1,20}){1,3}$"
       },
       "name": {
        "type": "string",
        "pattern": "^[^\\r\\n]*$"
       }
      }
     }
    ]
   },
   "AddressList": {
    "oneOf": [
     {
      "$ref": "#/components/schemas/Address"
     },
     {
      "type": "array",
      "items": {
       "$ref": "#/components/schemas/Address"
      },
      "minItems": 1,
      "maxItems": 100
     }
    ]
   },
   "Event": {
    "type": "object",
    "required": [
     "at",
     "message_id",
     "recipient",
     "type"
    ],
    "properties": {
     "at": {
      "type": "string",
      "format": "date-time"
     },
     "message_id": {
      "type": "string"
     },
     "recipient": {
      "type": "string"
     },
     "type": {
      "type": "string",
      "enum": [
       "accepted",
       "deferred",
       "delivered",
       "bounced",
       "expired",
       "cancelled",
       "suppressed",
       "complained",
       "unsubscribed",
       "delayed",
       "opened",
       "clicked"
      ]
     },
     "attempt": {
      "type": "integer"
     },
     "reply_code": {
      "type": "integer"
     },
     "enhanced_code": {
      "type": "string"
     },
     "reply_text": {
      "type": "string"
     },
     "category": {
      "type": "string"
     },
     "hard": {
      "type": "boolean"
     },
     "site": {
      "type": "string"
     },
     "mx_host": {
      "type": "string"
     },
     "remote_ip": {
      "type": "string"
     },
     "source_ip": {
      "type": "string"
     },
     "tls_version": {
      "type": "string"
     },
     "duration_ms": {
      "type": "integer"
     },
     "id": {
      "type": "string",
      "description": "ev_…, as in webhooks"
     },
     "user_agent": {
      "type": "string"
     },
     "ip": {
      "type": "string"
     },
     "url": {
      "type": "string"
     },
     "machine": {
      "type": "boolean",
      "description": "An open or click by a privacy proxy or scanner"
     }
    }
   },
   "Template": {
    "type": "object",
    "required": [
     "name",
     "subject",
     "missing",
     "created_at",
     "updated_at"
    ],
    "properties": {
     "name": {
      "type": "string"
     },
     "subject": {
      "type": "string"
     },
     "text": {
      "type": [
       "string",
       "null"
      ]
     },
     "html": {
      "type": [
       "string",
       "null"
      ]
     },
     "marketing": {
      "type": "boolean"
     },
     "defaults": {
      "type": "object"
     },
     "missing": {
      "type": "string"
     },
     "created_at": {
      "type": "string",
      "format": "date-time"
     },
     "updated_at": {
      "type": "string",
      "format": "date-time"
     }
    }
   },
   "TemplateInput": {
    "type": "object",
    "required": [
     "subject"
    ],
    "anyOf": [
     {
      "required": [
       "text"
      ]
     },
     {
      "required": [
       "html"
      ]
     }
    ],
    "properties": {
     "name": {
      "type": "string",
      "pattern": "^[A-Za-z0-9._-]{1,64}$"
     },
     "subject": {
      "type": "string"
     },
     "text": {
      "type": "string"
     },
     "html": {
      "type": "string"
     },
     "marketing": {
      "type": [
       "boolean",
       "null"
      ]
     },
     "defaults": {
      "type": [
       "object",
       "null"
      ]
     },
     "missing": {
      "enum": [
       "error",
       "default",
       null
      ],
      "description": "error: a variable missing from the data fails the send; default: use defaults, then empty"
     }
    }
   },
   "Suppression": {
    "type": "object",
    "required": [
     "address",
     "reason",
     "scope",
     "created_at"
    ],
    "properties": {
     "address": {
      "type": "string"
     },
     "reason": {
      "type": "string",
      "enum": [
       "bounce",
       "complaint",
       "unsubscribe",
       "manual"
      ]
     },
     "scope": {
      "type": "string",
      "enum": [
       "transactional",
       "marketing",
       "all"
      ]
     },
     "created_at": {
      "type": "string",
      "format": "date-time"
     },
     "source": {
      "type": [
       "string",
       "null"
      ]
     }
    }
   },
   "SendRequest": {
    "type": "object",
    "required": [
     "from"
    ],
    "properties": {
     "from": {
      "$ref": "#/components/schemas/Address"
     },
     "to": {
      "$ref": "#/components/schemas/AddressList"
     },
     "cc": {
      "$ref": "#/components/schemas/AddressList"
     },
     "bcc": {
      "$ref": "#/components/schemas/AddressList"
     },
     "reply_to": {
      "$ref": "#/components/schemas/AddressList"
     },
     "subject": {
      "type": "string",
      "pattern": "^[^\\r\\n]*$",
      "description": "A Mustache template when template data is given"
     },
     "text": {
      "type": "string"
     },
     "html": {
      "type": "string"
     },
     "template": {
      "type": "string",
      "description": "Name of a stored template"
     },
     "template_data": {
      "type": "object"
     },
     "attachments": {
      "type": "array",
      "items": {
       "type": "object",
       "required": [
        "filename",
        "content"
       ],
       "properties": {
        "filename": {
         "type": "string",
         "pattern": "^[^\\r\\n]*$"
        },
        "content": {
         "type": "string",
         "contentEncoding": "base64"
        },
        "content_type": {
         "type": "string"
        },
        "inline": {
         "type": "boolean"
        },
        "content_id": {
         "type": "string"
        }
       }
      }
     },
     "headers": {
      "type": "object",
      "additionalProperties": {
       "type": "string",
       "pattern": "^[^\\r\\n]*$"
      }
     },
     "charset": {
      "type": "string",
      "enum": [
       "UTF-8",
       "ISO-2022-JP"
      ]
     },
     "tags": {
      "type": "array",
      "items": {
       "type": "string",
       "minLength": 1,
       "maxLength": 255
      }
     },
     "custom_args": {
      "type": "object",
      "additionalProperties": {
       "type": "string"
      }
     },
     "marketing": {
      "type": "boolean"
     },
     "send_at": {
      "anyOf": [
       {
        "anyOf": [
         {
          "type": "string",
          "format": "date-time"
         },
         {
          "type": "string",
          "pattern": "^[0-9]{1,10}$"
         }
        ],
        "description": "ISO 8601 time or Unix seconds"
       },
       {
        "type": "number"
       },
       {
        "type": "null"
       }
      ]
     },
     "tracking": {
      "type": "object",
      "description": "Open and click tracking of the HTML part (default: the account's setting)",
      "properties": {
       "opens": {
        "type": "boolean"
       },
       "clicks": {
        "type": "boolean"
       }
      }
     },
     "recipients": {
      "type": "array",
      "maxItems": 1000,
      "description": "One personalised message per entry",
      "items": {
       "type": "object",
       "required": [
        "to"
       ],
       "properties": {
        "to": {
         "$ref": "#/components/schemas/AddressList"
        },
        "cc": {
         "$ref": "#/components/schemas/AddressList"
        },
        "bcc": {
         "$ref": "#/components/schemas/AddressList"
        },
        "data": {
         "type": "object"
        },
        "tags": {
         "type": "array",
         "items": {
          "type": "string"
         }
        },
        "custom_args": {
         "type": "object",
         "additionalProperties": {
          "type": "string"
         }
        }
       }
      }
     }
    },
    "examples": [
     {
      "from": "Shop <shop@acme.example>",
      "subject": "{{name}}様、ポイントのお知らせ",
      "text": "{{name}}様の残りポイントは{{points}}です。",
      "recipients": [
       {
        "to": "taro@example.jp",
        "data": {
         "name": "太郎",
         "points": 120
        }
       },
       {
        "to": "hanako@example.jp",
        "data": {
         "name": "花子",
         "points": 80
        }
       }
      ]
     }
    ]
   },
   "Accepted": {
    "type": "object",
    "required": [
     "messages"
    ],
    "properties": {
     "id": {
      "type": "string"
     },
     "messages": {
      "type": "array",
      "items": {
       "type": "object",
       "required": [
        "id",
        "recipients"
       ],
       "properties": {
        "id": {
         "type": "string"
        },
        "recipients": {
         "type": "array",
         "items": {
          "type": "string"
         }
        }
       }
      }
     }
    }
   },
   "Webhook": {
    "type": "object",
    "required": [
     "id",
     "name",
     "url",
     "format",
     "events",
     "enabled"
    ],
    "properties": {
     "id": {
      "type": "string"
     },
     "name": {
      "type": "string"
     },
     "url": {
      "type": "string"
     },
     "format": {
      "type": "string",
      "enum": [
       "native",
       "sendgrid",
       "ses"
      ]
     },
     "events": {
      "type": "array",
      "items": {
       "type": "string"
      }
     },
     "enabled": {
      "type": "boolean"
     },
     "created_at": {
      "type": "string"
     },
     "position": {
      "type": "integer",
      "description": "The last event id sent or passed over"
     },
     "failing_since": {
      "type": [
       "string",
       "null"
      ]
     },
     "disabled_reason": {
      "type": [
       "string",
       "null"
      ]
     },
     "secret": {
      "type": "string",
      "description": "native: whsec_…, in the creation answer only"
     },
     "public_key": {
      "type": "string",
      "description": "sendgrid: the verification key"
     },
     "topic_arn": {
      "type": "string",
      "description": "ses: the SNS topic ARN for configuration-set event destinations"
     },
     "confirmed": {
      "type": "boolean",
      "description": "ses: the subscription was confirmed"
     }
    }
   },
   "WebhookAttempt": {
    "type": "object",
    "required": [
     "at",
     "events",
     "succeeded"
    ],
    "properties": {
     "at": {
      "type": "string"
     },
     "events": {
      "type": "integer"
     },
     "first_event": {
      "type": "integer"
     },
     "last_event": {
      "type": "integer"
     },
     "status": {
      "type": [
       "integer",
       "null"
      ]
     },
     "error": {
      "type": [
       "string",
       "null"
      ]
     },
     "succeeded": {
      "type": "boolean"
     },
     "duration_ms": {
      "type": "integer"
     },
     "replay": {
      "type": "boolean"
     },
     "test": {
      "type": "boolean"
     }
    }
   }
  }
 },
 "paths": {
  "/v1/messages": {
   "post": {
    "operationId": "sendMessages",
    "summary": "Send one message, or up to 1,000 personalised ones",
    "requestBody": {
     "required": true,
     "content": {
      "application/json": {
       "schema": {
        "$ref": "#/components/schemas/SendRequest"
       }
      }
     }
    },
    "responses": {
     "202": {
      "description": "Durably queued",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Accepted"
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/BadRequest"
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "403": {
      "$ref": "#/components/responses/Forbidden"
     },
     "429": {
      "$ref": "#/components/responses/TooManyRequests"
     },
     "404": {
      "description": "Template not found",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "413": {
      "description": "Request or message too large",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "422": {
      "description": "Invalid message (addresses, header injection, template data)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "503": {
      "description": "Spool unavailable",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "507": {
      "description": "Spool storage full",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     }
    }
   }
  },
  "/v1/messages/{id}": {
   "get": {
    "operationId": "getMessage",
    "summary": "Envelope, recipients and every delivery attempt",
    "parameters": [
     {
      "name": "id",
      "in": "path",
      "required": true,
      "schema": {
       "type": "string",
       "pattern": "^[0-9a-hjkmnp-tv-z]{20}$"
      }
     }
    ],
    "responses": {
     "200": {
      "description": "The message",
      "content": {
       "application/json": {
        "schema": {
         "type": "object",
         "required": [
          "id",
          "recipients",
          "events"
         ],
         "properties": {
          "id": {
           "type": "string"
          },
          "from": {
           "type": "string"
          },
          "received_at": {
           "type": "string"
          },
          "recipients": {
           "type": "array",
           "items": {
            "type": "object",
            "properties": {
             "address": {
              "type": "string"
             },
             "state": {
              "type": "string"
             },
             "attempts": {
              "type": "integer"
             },
             "last_reply": {
              "type": [
               "string",
               "null"
              ]
             }
            }
           }
          },
          "events": {
           "type": "array",
           "items": {
            "$ref": "#/components/schemas/Event"
           }
          }
         }
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/BadRequest"
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "403": {
      "$ref": "#/components/responses/Forbidden"
     },
     "429": {
      "$ref": "#/components/responses/TooManyRequests"
     },
     "404": {
      "description": "No such message",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     }
    }
   }
  },
  "/v1/messages/{id}/resend": {
   "post": {
    "operationId": "resendMessage",
    "summary": "Send again to the recipients that bounced, expired or were cancelled",
    "parameters": [
     {
      "name": "id",
      "in": "path",
      "required": true,
      "schema": {
       "type": "string",
       "pattern": "^[0-9a-hjkmnp-tv-z]{20}$"
      }
     }
    ],
    "requestBody": {
     "required": false,
     "content": {
      "application/json": {
       "schema": {
        "type": "object",
        "properties": {
         "recipients": {
          "type": "array",
          "items": {
           "type": "string"
          }
         }
        }
       }
      }
     }
    },
    "responses": {
     "202": {
      "description": "Queued again",
      "content": {
       "application/json": {
        "schema": {
         "type": "object",
         "properties": {
          "id": {
           "type": "string"
          },
          "resend_of": {
           "type": "string"
          },
          "recipients": {
           "type": "array",
           "items": {
            "type": "string"
           }
          }
         }
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/BadRequest"
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "403": {
      "$ref": "#/components/responses/Forbidden"
     },
     "429": {
      "$ref": "#/components/responses/TooManyRequests"
     },
     "404": {
      "description": "No such message",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "409": {
      "description": "Nothing to resend",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "410": {
      "description": "Content no longer stored",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "503": {
      "description": "Spool unavailable",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     }
    }
   }
  },
  "/v1/resend": {
   "post": {
    "operationId": "resendByFilter",
    "summary": "Resend every failed recipient matching a filter",
    "requestBody": {
     "required": true,
     "content": {
      "application/json": {
       "schema": {
        "type": "object",
        "properties": {
         "status": {
          "type": "array",
          "items": {
           "type": "string",
           "enum": [
            "bounced",
            "expired",
            "cancelled"
           ]
          }
         },
         "category": {
          "type": "string"
         },
         "recipient": {
          "type": "string"
         },
         "tag": {
          "type": "string"
         },
         "since": {
          "type": "string",
          "format": "date-time"
         },
         "until": {
          "type": "string",
          "format": "date-time"
         },
         "limit": {
          "type": "integer",
          "minimum": 1,
          "maximum": 10000
         }
        }
       },
       "examples": [
        {
         "status": [
          "bounced"
         ],
         "category": "mailbox_full",
         "since": "2026-11-01T00:00:00Z"
        }
       ]
      }
     }
    },
    "responses": {
     "202": {
      "description": "Resent",
      "content": {
       "application/json": {
        "schema": {
         "type": "object",
         "properties": {
          "resent": {
           "type": "array"
          },
          "skipped": {
           "type": "array"
          }
         }
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/BadRequest"
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "403": {
      "$ref": "#/components/responses/Forbidden"
     },
     "429": {
      "$ref": "#/components/responses/TooManyRequests"
     },
     "503": {
      "description": "Spool unavailable",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     }
    }
   }
  },
  "/v1/events": {
   "get": {
    "operationId": "searchEvents",
    "summary": "Search the event log, newest first; Accept: text/csv for CSV",
    "parameters": [
     {
      "name": "recipient",
      "in": "query",
      "required": false,
      "schema": {
       "type": "string"
      },
      "description": ""
     },
     {
      "name": "message_id",
      "in": "query",
      "required": false,
      "schema": {
       "type": "string",
       "pattern": "^[0-9a-hjkmnp-tv-z]{20}$"
      },
      "description": ""
     },
     {
      "name": "tag",
      "in": "query",
      "required": false,
      "schema": {
       "type": "string"
      },
      "description": ""
     },
     {
      "name": "status",
      "in": "query",
      "required": false,
      "schema": {
       "type": "string",
       "enum": [
        "accepted",
        "deferred",
        "delivered",
        "bounced",
        "expired",
        "cancelled",
        "suppressed",
        "complained",
        "unsubscribed",
        "delayed",
        "opened",
        "clicked"
       ]
      },
      "description": ""
     },
     {
      "name": "category",
      "in": "query",
      "required": false,
      "schema": {
       "type": "string"
      },
      "description": ""
     },
     {
      "name": "since",
      "in": "query",
      "required": false,
      "schema": {
       "anyOf": [
        {
         "type": "string",
         "format": "date-time"
        },
        {
         "type": "string",
         "pattern": "^[0-9]{1,10}$"
        }
       ],
       "description": "ISO 8601 time or Unix seconds"
      },
      "description": ""
     },
     {
      "name": "until",
      "in": "query",
      "required": false,
      "schema": {
       "anyOf": [
        {
         "type": "string",
         "format": "date-time"
        },
        {
         "type": "string",
         "pattern": "^[0-9]{1,10}$"
        }
       ],
       "description": "ISO 8601 time or Unix seconds"
      },
      "description": ""
     },
     {
      "name": "limit",
      "in": "query",
      "required": false,
      "schema": {
       "type": "integer",
       "minimum": 1,
       "maximum": 1000
      },
      "description": ""
     },
     {
      "name": "cursor",
      "in": "query",
      "required": false,
      "schema": {
       "type": "string",
       "pattern": "^[0-9.]+_[0-9]+$"
      },
      "description": ""
     }
    ],
    "responses": {
     "200": {
      "description": "Events",
      "content": {
       "application/json": {
        "schema": {
         "type": "object",
         "required": [
          "events",
          "next_cursor"
         ],
         "properties": {
          "events": {
           "type": "array",
           "items": {
            "$ref": "#/components/schemas/Event"
           }
          },
          "next_cursor": {
           "type": [
            "string",
            "null"
           ]
          }
         }
        }
       },
       "text/csv": {
        "schema": {
         "type": "string"
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/BadRequest"
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "403": {
      "$ref": "#/components/responses/Forbidden"
     },
     "429": {
      "$ref": "#/components/responses/TooManyRequests"
     }
    }
   }
  },
  "/v1/stats": {
   "get": {
    "operationId": "stats",
    "summary": "Event counts per hour or day, optionally per tag or receiving provider",
    "parameters": [
     {
      "name": "since",
      "in": "query",
      "required": false,
      "schema": {
       "anyOf": [
        {
         "type": "string",
         "format": "date-time"
        },
        {
         "type": "string",
         "pattern": "^[0-9]{1,10}$"
        }
       ],
       "description": "ISO 8601 time or Unix seconds"
      },
      "description": ""
     },
     {
      "name": "until",
      "in": "query",
      "required": false,
      "schema": {
       "anyOf": [
        {
         "type": "string",
         "format": "date-time"
        },
        {
         "type": "string",
         "pattern": "^[0-9]{1,10}$"
        }
       ],
       "description": "ISO 8601 time or Unix seconds"
      },
      "description": ""
     },
     {
      "name": "interval",
      "in": "query",
      "required": false,
      "schema": {
       "type": "string",
       "enum": [
        "hour",
        "day"
       ]
      },
      "description": ""
     },
     {
      "name": "group_by",
      "in": "query",
      "required": false,
      "schema": {
       "type": "string",
       "enum": [
        "none",
        "tag",
        "provider"
       ]
      },
      "description": ""
     }
    ],
    "responses": {
     "200": {
      "description": "Counts",
      "content": {
       "application/json": {
        "schema": {
         "type": "object",
         "required": [
          "stats",
          "engagement"
         ],
         "properties": {
          "stats": {
           "type": "array",
           "items": {
            "type": "object",
            "properties": {
             "period": {
              "type": "string"
             },
             "counts": {
              "type": "object",
              "additionalProperties": {
               "type": "integer"
              }
             }
            }
           }
          },
          "engagement": {
           "type": "object",
           "description": "Opens and clicks in the window: total and unique (per message and recipient), people and machines apart",
           "properties": {
            "opened": {
             "type": "object",
             "properties": {
              "human_total": {
               "type": "integer"
              },
              "human_unique": {
               "type": "integer"
              },
              "machine_total": {
               "type": "integer"
              },
              "machine_unique": {
               "type": "integer"
              }
             }
            },
            "clicked": {
             "type": "object",
             "properties": {
              "human_total": {
               "type": "integer"
              },
              "human_unique": {
               "type": "integer"
              },
              "machine_total": {
               "type": "integer"
              },
              "machine_unique": {
               "type": "integer"
              }
             }
            }
           }
          }
         }
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/BadRequest"
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "403": {
      "$ref": "#/components/responses/Forbidden"
     },
     "429": {
      "$ref": "#/components/responses/TooManyRequests"
     }
    }
   }
  },
  "/v1/stats/bounces": {
   "get": {
    "operationId": "bounceAnalysis",
    "summary": "Bounces by category and receiving provider, top replies, affected recipients",
    "parameters": [
     {
      "name": "since",
      "in": "query",
      "required": false,
      "schema": {
       "anyOf": [
        {
         "type": "string",
         "format": "date-time"
        },
        {
         "type": "string",
         "pattern": "^[0-9]{1,10}$"
        }
       ],
       "description": "ISO 8601 time or Unix seconds"
      },
      "description": ""
     },
     {
      "name": "until",
      "in": "query",
      "required": false,
      "schema": {
       "anyOf": [
        {
         "type": "string",
         "format": "date-time"
        },
        {
         "type": "string",
         "pattern": "^[0-9]{1,10}$"
        }
       ],
       "description": "ISO 8601 time or Unix seconds"
      },
      "description": ""
     },
     {
      "name": "limit",
      "in": "query",
      "required": false,
      "schema": {
       "type": "integer",
       "minimum": 1,
       "maximum": 10000
      },
      "description": ""
     }
    ],
    "responses": {
     "200": {
      "description": "Analysis",
      "content": {
       "application/json": {
        "schema": {
         "type": "object",
         "required": [
          "total",
          "by_category",
          "by_provider",
          "top_replies",
          "recipients"
         ],
         "properties": {
          "total": {
           "type": "integer"
          },
          "by_category": {
           "type": "array",
           "items": {
            "type": "object",
            "properties": {
             "name": {
              "type": "string"
             },
             "bounces": {
              "type": "integer"
             },
             "hard": {
              "type": "integer"
             }
            }
           }
          },
          "by_provider": {
           "type": "array",
           "items": {
            "type": "object",
            "properties": {
             "name": {
              "type": "string"
             },
             "bounces": {
              "type": "integer"
             },
             "hard": {
              "type": "integer"
             }
            }
           }
          },
          "top_replies": {
           "type": "array",
           "items": {
            "type": "object",
            "properties": {
             "category": {
              "type": "string"
             },
             "text": {
              "type": "string"
             },
             "count": {
              "type": "integer"
             }
            }
           }
          },
          "recipients": {
           "type": "array",
           "items": {
            "type": "object",
            "properties": {
             "recipient": {
              "type": "string"
             },
             "category": {
              "type": "string"
             },
             "at": {
              "type": "string"
             },
             "message_id": {
              "type": "string"
             },
             "reply_text": {
              "type": [
               "string",
               "null"
              ]
             }
            }
           }
          }
         }
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/BadRequest"
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "403": {
      "$ref": "#/components/responses/Forbidden"
     },
     "429": {
      "$ref": "#/components/responses/TooManyRequests"
     }
    }
   }
  },
  "/v1/domains": {
   "get": {
    "operationId": "listDomains",
    "summary": "The account's sending domains and their DKIM keys",
    "responses": {
     "200": {
      "description": "Domains",
      "content": {
       "application/json": {
        "schema": {
         "type": "object",
         "required": [
          "domains"
         ],
         "properties": {
          "domains": {
           "type": "array",
           "items": {
            "type": "object",
            "properties": {
             "domain": {
              "type": "string"
             },
             "verified": {
              "type": "boolean"
             },
             "dkim": {
              "type": "array"
             },
             "return_path": {
              "type": "object",
              "properties": {
               "domain": {
                "type": "string"
               },
               "verified": {
                "type": "boolean"
               }
              }
             }
            }
           }
          }
         }
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/BadRequest"
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "403": {
      "$ref": "#/components/responses/Forbidden"
     },
     "429": {
      "$ref": "#/components/responses/TooManyRequests"
     }
    }
   },
   "post": {
    "operationId": "addDomain",
    "summary": "Add a sending domain with a new DKIM key (RSA-2048 or Ed25519)",
    "requestBody": {
     "required": true,
     "content": {
      "application/json": {
       "schema": {
        "type": "object",
        "required": [
         "domain"
        ],
        "properties": {
         "domain": {
          "type": "string",
          "pattern": "^[a-z0-9-]{1,20}(\\.[a-z0-9-]{1,20}){1,3}$"
         },
         "algorithm": {
          "type": "string",
          "enum": [
           "rsa",
           "ed25519"
          ]
         },
         "return_path": {
          "type": "string",
          "description": "The domain's own bounce domain: the domain or a name under it; used once its MX names this server"
         }
        }
       }
      }
     }
    },
    "responses": {
     "201": {
      "description": "The key and its DNS record",
      "content": {
       "application/json": {
        "schema": {
         "type": "object",
         "properties": {
          "domain": {
           "type": "string"
          },
          "selector": {
           "type": "string"
          },
          "active": {
           "type": "boolean"
          },
          "record": {
           "type": "object"
          }
         }
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/BadRequest"
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "403": {
      "$ref": "#/components/responses/Forbidden"
     },
     "429": {
      "$ref": "#/components/responses/TooManyRequests"
     },
     "409": {
      "description": "The domain belongs to another account",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     }
    }
   }
  },
  "/v1/domains/{domain}/verify": {
   "post": {
    "operationId": "verifyDomain",
    "summary": "Look the domain's records up in DNS; the domain is verified (may be used as sender and From) when its active DKIM key's record is published",
    "parameters": [
     {
      "name": "domain",
      "in": "path",
      "required": true,
      "schema": {
       "type": "string"
      }
     }
    ],
    "responses": {
     "200": {
      "description": "The records checked and the verdict",
      "content": {
       "application/json": {
        "schema": {
         "type": "object",
         "required": [
          "domain",
          "verified",
          "records"
         ],
         "properties": {
          "domain": {
           "type": "string"
          },
          "verified": {
           "type": "boolean"
          },
          "return_path": {
           "type": "object",
           "properties": {
            "domain": {
             "type": "string"
            },
            "verified": {
             "type": "boolean"
            }
           }
          },
          "records": {
           "type": "array",
           "items": {
            "type": "object",
            "required": [
             "name",
             "status"
            ],
            "properties": {
             "name": {
              "type": "string"
             },
             "type": {
              "type": "string"
             },
             "purpose": {
              "type": "string"
             },
             "expected": {
              "type": "string"
             },
             "found": {
              "type": "array",
              "items": {
               "type": "string"
              }
             },
             "status": {
              "type": "string",
              "enum": [
               "ok",
               "missing",
               "wrong",
               "unknown"
              ]
             },
             "detail": {
              "type": "string"
             }
            }
           }
          }
         }
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/BadRequest"
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "403": {
      "$ref": "#/components/responses/Forbidden"
     },
     "429": {
      "$ref": "#/components/responses/TooManyRequests"
     },
     "404": {
      "description": "No DKIM key of this account for the domain",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "503": {
      "description": "Verification unavailable",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     }
    }
   }
  },
  "/v1/domains/{domain}/compliance": {
   "get": {
    "operationId": "domainCompliance",
    "summary": "Bulk-sender compliance: SPF, DKIM, DMARC alignment, reverse DNS, TLS, unsubscribe, complaint rate",
    "parameters": [
     {
      "name": "domain",
      "in": "path",
      "required": true,
      "schema": {
       "type": "string"
      }
     }
    ],
    "responses": {
     "200": {
      "description": "Checks",
      "content": {
       "application/json": {
        "schema": {
         "type": "object",
         "required": [
          "domain",
          "checks"
         ],
         "properties": {
          "domain": {
           "type": "string"
          },
          "checks": {
           "type": "array",
           "items": {
            "type": "object",
            "required": [
             "name",
             "status",
             "detail"
            ],
            "properties": {
             "name": {
              "type": "string"
             },
             "status": {
              "type": "string",
              "enum": [
               "pass",
               "warn",
               "fail"
              ]
             },
             "detail": {
              "type": "string"
             },
             "fix": {
              "type": [
               "string",
               "null"
              ]
             }
            }
           }
          }
         }
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/BadRequest"
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "403": {
      "$ref": "#/components/responses/Forbidden"
     },
     "429": {
      "$ref": "#/components/responses/TooManyRequests"
     },
     "404": {
      "description": "Not one of the account's domains",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "503": {
      "description": "Checks unavailable",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     }
    }
   }
  },
  "/v1/account": {
   "get": {
    "operationId": "getAccount",
    "summary": "The account, its quotas and what counts against them",
    "responses": {
     "200": {
      "description": "Account",
      "content": {
       "application/json": {
        "schema": {
         "type": "object",
         "required": [
          "name",
          "quota"
         ],
         "properties": {
          "name": {
           "type": "string"
          },
          "domains": {
           "type": "array",
           "items": {
            "type": "string"
           }
          },
          "verified_domains": {
           "type": "array",
           "items": {
            "type": "string"
           }
          },
          "suppressed_reasons": {
           "type": "array",
           "items": {
            "type": "string"
           }
          },
          "quota": {
           "type": "object",
           "properties": {
            "max_send_rate": {
             "type": "number"
            },
            "max_24h_send": {
             "type": "integer"
            },
            "sent_last_24h": {
             "type": "integer"
            },
            "sandbox": {
             "type": "boolean"
            }
           }
          }
         }
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/BadRequest"
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "403": {
      "$ref": "#/components/responses/Forbidden"
     },
     "429": {
      "$ref": "#/components/responses/TooManyRequests"
     }
    }
   }
  },
  "/v1/account/suppression": {
   "put": {
    "operationId": "setSuppressedReasons",
    "summary": "Which reports suppress an address automatically (unsubscribes always do)",
    "requestBody": {
     "required": true,
     "content": {
      "application/json": {
       "schema": {
        "type": "object",
        "required": [
         "reasons"
        ],
        "properties": {
         "reasons": {
          "type": "array",
          "items": {
           "type": "string",
           "enum": [
            "bounce",
            "complaint"
           ]
          }
         }
        }
       }
      }
     }
    },
    "responses": {
     "200": {
      "description": "Set",
      "content": {
       "application/json": {
        "schema": {
         "type": "object",
         "properties": {
          "suppressed_reasons": {
           "type": "array",
           "items": {
            "type": "string"
           }
          }
         }
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/BadRequest"
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "403": {
      "$ref": "#/components/responses/Forbidden"
     },
     "429": {
      "$ref": "#/components/responses/TooManyRequests"
     }
    }
   }
  },
  "/v1/account/tracking": {
   "put": {
    "operationId": "setTrackingDefaults",
    "summary": "Whether the account's HTML mail tracks opens and clicks unless a send says otherwise",
    "requestBody": {
     "required": true,
     "content": {
      "application/json": {
       "schema": {
        "type": "object",
        "properties": {
         "opens": {
          "type": "boolean"
         },
         "clicks": {
          "type": "boolean"
         }
        }
       }
      }
     }
    },
    "responses": {
     "200": {
      "description": "Set",
      "content": {
       "application/json": {
        "schema": {
         "type": "object",
         "properties": {
          "opens": {
           "type": "boolean"
          },
          "clicks": {
           "type": "boolean"
          }
         }
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/BadRequest"
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "403": {
      "$ref": "#/components/responses/Forbidden"
     },
     "429": {
      "$ref": "#/components/responses/TooManyRequests"
     }
    }
   }
  },
  "/v1/webhooks": {
   "get": {
    "operationId": "listWebhooks",
    "summary": "The account's webhook endpoints",
    "responses": {
     "200": {
      "description": "Endpoints",
      "content": {
       "application/json": {
        "schema": {
         "type": "object",
         "required": [
          "webhooks"
         ],
         "properties": {
          "webhooks": {
           "type": "array",
           "items": {
            "$ref": "#/components/schemas/Webhook"
           }
          }
         }
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/BadRequest"
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "403": {
      "$ref": "#/components/responses/Forbidden"
     },
     "429": {
      "$ref": "#/components/responses/TooManyRequests"
     }
    }
   },
   "post": {
    "operationId": "createWebhook",
    "summary": "Create an endpoint; the native format's secret is in this answer only",
    "requestBody": {
     "required": true,
     "content": {
      "application/json": {
       "schema": {
        "type": "object",
        "required": [
         "url"
        ],
        "properties": {
         "url": {
          "type": "string",
          "description": "https (http only with webhooks.allowPlainHttp)"
         },
         "name": {
          "type": "string",
          "pattern": "^[A-Za-z0-9_-]{1,64}$"
         },
         "format": {
          "type": "string",
          "enum": [
           "native",
           "sendgrid",
           "ses"
          ]
         },
         "events": {
          "type": "array",
          "items": {
           "type": "string",
           "enum": [
            "accepted",
            "deferred",
            "delivered",
            "bounced",
            "expired",
            "cancelled",
            "suppressed",
            "complained",
            "unsubscribed",
            "delayed",
            "opened",
            "clicked"
           ]
          }
         },
         "enabled": {
          "type": "boolean"
         }
        }
       }
      }
     }
    },
    "responses": {
     "201": {
      "description": "Created",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Webhook"
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/BadRequest"
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "403": {
      "$ref": "#/components/responses/Forbidden"
     },
     "429": {
      "$ref": "#/components/responses/TooManyRequests"
     },
     "409": {
      "description": "Name taken",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     }
    }
   }
  },
  "/v1/webhooks/{id}": {
   "get": {
    "operationId": "getWebhook",
    "parameters": [
     {
      "name": "id",
      "in": "path",
      "required": true,
      "schema": {
       "type": "string"
      }
     }
    ],
    "responses": {
     "200": {
      "description": "Endpoint",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Webhook"
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/BadRequest"
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "403": {
      "$ref": "#/components/responses/Forbidden"
     },
     "429": {
      "$ref": "#/components/responses/TooManyRequests"
     },
     "404": {
      "description": "Not found",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     }
    }
   },
   "patch": {
    "operationId": "updateWebhook",
    "parameters": [
     {
      "name": "id",
      "in": "path",
      "required": true,
      "schema": {
       "type": "string"
      }
     }
    ],
    "requestBody": {
     "required": true,
     "content": {
      "application/json": {
       "schema": {
        "type": "object",
        "properties": {
         "url": {
          "type": "string"
         },
         "events": {
          "type": "array",
          "items": {
           "type": "string",
           "enum": [
            "accepted",
            "deferred",
            "delivered",
            "bounced",
            "expired",
            "cancelled",
            "suppressed",
            "complained",
            "unsubscribed",
            "delayed",
            "opened",
            "clicked"
           ]
          }
         },
         "enabled": {
          "type": "boolean",
          "description": "Enabling resumes where it stopped"
         }
        }
       }
      }
     }
    },
    "responses": {
     "200": {
      "description": "Updated",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Webhook"
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/BadRequest"
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "403": {
      "$ref": "#/components/responses/Forbidden"
     },
     "429": {
      "$ref": "#/components/responses/TooManyRequests"
     },
     "404": {
      "description": "Not found",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     }
    }
   },
   "delete": {
    "operationId": "deleteWebhook",
    "parameters": [
     {
      "name": "id",
      "in": "path",
      "required": true,
      "schema": {
       "type": "string"
      }
     }
    ],
    "responses": {
     "204": {
      "description": "Deleted"
     },
     "400": {
      "$ref": "#/components/responses/BadRequest"
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "403": {
      "$ref": "#/components/responses/Forbidden"
     },
     "429": {
      "$ref": "#/components/responses/TooManyRequests"
     },
     "404": {
      "description": "Not found",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     }
    }
   }
  },
  "/v1/webhooks/{id}/test": {
   "post": {
    "operationId": "testWebhook",
    "summary": "Send one sample event now",
    "parameters": [
     {
      "name": "id",
      "in": "path",
      "required": true,
      "schema": {
       "type": "string"
      }
     }
    ],
    "responses": {
     "200": {
      "description": "The request and its outcome",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/WebhookAttempt"
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/BadRequest"
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "403": {
      "$ref": "#/components/responses/Forbidden"
     },
     "429": {
      "$ref": "#/components/responses/TooManyRequests"
     },
     "404": {
      "description": "Not found",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     }
    }
   }
  },
  "/v1/webhooks/{id}/deliveries": {
   "get": {
    "operationId": "webhookDeliveries",
    "summary": "Recent requests to the endpoint, newest first",
    "parameters": [
     {
      "name": "id",
      "in": "path",
      "required": true,
      "schema": {
       "type": "string"
      }
     },
     {
      "name": "limit",
      "in": "query",
      "required": false,
      "schema": {
       "type": "integer",
       "minimum": 1,
       "maximum": 500
      },
      "description": ""
     }
    ],
    "responses": {
     "200": {
      "description": "Requests",
      "content": {
       "application/json": {
        "schema": {
         "type": "object",
         "required": [
          "deliveries"
         ],
         "properties": {
          "deliveries": {
           "type": "array",
           "items": {
            "$ref": "#/components/schemas/WebhookAttempt"
           }
          }
         }
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/BadRequest"
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "403": {
      "$ref": "#/components/responses/Forbidden"
     },
     "429": {
      "$ref": "#/components/responses/TooManyRequests"
     },
     "404": {
      "description": "Not found",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     }
    }
   }
  },
  "/v1/webhooks/{id}/replay": {
   "post": {
    "operationId": "replayWebhook",
    "summary": "Send the events of a time range again (same event ids)",
    "parameters": [
     {
      "name": "id",
      "in": "path",
      "required": true,
      "schema": {
       "type": "string"
      }
     }
    ],
    "requestBody": {
     "required": true,
     "content": {
      "application/json": {
       "schema": {
        "type": "object",
        "required": [
         "since"
        ],
        "properties": {
         "since": {
          "anyOf": [
           {
            "type": "string",
            "format": "date-time"
           },
           {
            "type": "string",
            "pattern": "^[0-9]{1,10}$"
           }
          ],
          "description": "ISO 8601 time or Unix seconds"
         },
         "until": {
          "anyOf": [
           {
            "type": "string",
            "format": "date-time"
           },
           {
            "type": "string",
            "pattern": "^[0-9]{1,10}$"
           }
          ],
          "description": "ISO 8601 time or Unix seconds"
         }
        }
       }
      }
     }
    },
    "responses": {
     "200": {
      "description": "Nothing in the range",
      "content": {
       "application/json": {
        "schema": {
         "type": "object"
        }
       }
      }
     },
     "202": {
      "description": "Queued",
      "content": {
       "application/json": {
        "schema": {
         "type": "object"
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/BadRequest"
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "403": {
      "$ref": "#/components/responses/Forbidden"
     },
     "429": {
      "$ref": "#/components/responses/TooManyRequests"
     },
     "404": {
      "description": "Not found",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     }
    }
   }
  },
  "/v1/account/usage": {
   "get": {
    "operationId": "getUsage",
    "summary": "Messages, recipients and bytes accepted per UTC day",
    "parameters": [
     {
      "name": "since",
      "in": "query",
      "required": false,
      "schema": {
       "anyOf": [
        {
         "type": "string",
         "format": "date-time"
        },
        {
         "type": "string",
         "pattern": "^[0-9]{1,10}$"
        }
       ],
       "description": "ISO 8601 time or Unix seconds"
      },
      "description": ""
     },
     {
      "name": "until",
      "in": "query",
      "required": false,
      "schema": {
       "anyOf": [
        {
         "type": "string",
         "format": "date-time"
        },
        {
         "type": "string",
         "pattern": "^[0-9]{1,10}$"
        }
       ],
       "description": "ISO 8601 time or Unix seconds"
      },
      "description": ""
     }
    ],
    "responses": {
     "200": {
      "description": "Usage",
      "content": {
       "application/json": {
        "schema": {
         "type": "object",
         "required": [
          "usage"
         ],
         "properties": {
          "usage": {
           "type": "array",
           "items": {
            "type": "object",
            "properties": {
             "day": {
              "type": "string"
             },
             "messages": {
              "type": "integer"
             },
             "recipients": {
              "type": "integer"
             },
             "bytes": {
              "type": "integer"
             }
            }
           }
          }
         }
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/BadRequest"
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "403": {
      "$ref": "#/components/responses/Forbidden"
     },
     "429": {
      "$ref": "#/components/responses/TooManyRequests"
     }
    }
   }
  },
  "/v1/templates": {
   "get": {
    "operationId": "listTemplates",
    "parameters": [
     {
      "name": "after",
      "in": "query",
      "required": false,
      "schema": {
       "type": "string"
      },
      "description": ""
     },
     {
      "name": "limit",
      "in": "query",
      "required": false,
      "schema": {
       "type": "integer",
       "minimum": 1,
       "maximum": 1000
      },
      "description": ""
     }
    ],
    "responses": {
     "200": {
      "description": "Templates",
      "content": {
       "application/json": {
        "schema": {
         "type": "object",
         "required": [
          "templates"
         ],
         "properties": {
          "templates": {
           "type": "array",
           "items": {
            "$ref": "#/components/schemas/Template"
           }
          },
          "next": {
           "type": [
            "string",
            "null"
           ]
          }
         }
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/BadRequest"
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "403": {
      "$ref": "#/components/responses/Forbidden"
     },
     "429": {
      "$ref": "#/components/responses/TooManyRequests"
     }
    }
   },
   "post": {
    "operationId": "createTemplate",
    "requestBody": {
     "required": true,
     "content": {
      "application/json": {
       "schema": {
        "$ref": "#/components/schemas/TemplateInput"
       },
       "examples": {
        "points": {
         "value": {
          "name": "points",
          "subject": "{{name}}様",
          "text": "残り{{points}}ポイント",
          "missing": "error"
         }
        }
       }
      }
     }
    },
    "responses": {
     "201": {
      "description": "Created",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Template"
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/BadRequest"
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "403": {
      "$ref": "#/components/responses/Forbidden"
     },
     "429": {
      "$ref": "#/components/responses/TooManyRequests"
     },
     "409": {
      "description": "Exists",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "422": {
      "description": "Does not parse",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     }
    }
   }
  },
  "/v1/templates/{name}": {
   "get": {
    "operationId": "getTemplate",
    "parameters": [
     {
      "name": "name",
      "in": "path",
      "required": true,
      "schema": {
       "type": "string"
      }
     }
    ],
    "responses": {
     "200": {
      "description": "Template",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Template"
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/BadRequest"
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "403": {
      "$ref": "#/components/responses/Forbidden"
     },
     "429": {
      "$ref": "#/components/responses/TooManyRequests"
     },
     "404": {
      "description": "Not found",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     }
    }
   },
   "put": {
    "operationId": "updateTemplate",
    "parameters": [
     {
      "name": "name",
      "in": "path",
      "required": true,
      "schema": {
       "type": "string"
      }
     }
    ],
    "requestBody": {
     "required": true,
     "content": {
      "application/json": {
       "schema": {
        "$ref": "#/components/schemas/TemplateInput"
       }
      }
     }
    },
    "responses": {
     "200": {
      "description": "Updated",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Template"
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/BadRequest"
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "403": {
      "$ref": "#/components/responses/Forbidden"
     },
     "429": {
      "$ref": "#/components/responses/TooManyRequests"
     },
     "404": {
      "description": "Not found",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "422": {
      "description": "Does not parse",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     }
    }
   },
   "delete": {
    "operationId": "deleteTemplate",
    "parameters": [
     {
      "name": "name",
      "in": "path",
      "required": true,
      "schema": {
       "type": "string"
      }
     }
    ],
    "responses": {
     "204": {
      "description": "Deleted"
     },
     "400": {
      "$ref": "#/components/responses/BadRequest"
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "403": {
      "$ref": "#/components/responses/Forbidden"
     },
     "429": {
      "$ref": "#/components/responses/TooManyRequests"
     },
     "404": {
      "description": "Not found",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     }
    }
   }
  },
  "/v1/templates/{name}/render": {
   "post": {
    "operationId": "renderTemplate",
    "summary": "Preview a template with data",
    "parameters": [
     {
      "name": "name",
      "in": "path",
      "required": true,
      "schema": {
       "type": "string"
      }
     }
    ],
    "requestBody": {
     "required": false,
     "content": {
      "application/json": {
       "schema": {
        "type": "object",
        "properties": {
         "data": {
          "type": "object"
         }
        }
       }
      }
     }
    },
    "responses": {
     "200": {
      "description": "Rendered",
      "content": {
       "application/json": {
        "schema": {
         "type": "object",
         "required": [
          "subject"
         ],
         "properties": {
          "subject": {
           "type": "string"
          },
          "text": {
           "type": [
            "string",
            "null"
           ]
          },
          "html": {
           "type": [
            "string",
            "null"
           ]
          }
         }
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/BadRequest"
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "403": {
      "$ref": "#/components/responses/Forbidden"
     },
     "429": {
      "$ref": "#/components/responses/TooManyRequests"
     },
     "404": {
      "description": "Not found",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "422": {
      "description": "Missing variables",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     }
    }
   }
  },
  "/v1/suppressions": {
   "get": {
    "operationId": "listSuppressions",
    "parameters": [
     {
      "name": "reason",
      "in": "query",
      "required": false,
      "schema": {
       "type": "string",
       "enum": [
        "bounce",
        "complaint",
        "unsubscribe",
        "manual"
       ]
      },
      "description": ""
     },
     {
      "name": "since",
      "in": "query",
      "required": false,
      "schema": {
       "anyOf": [
        {
         "type": "string",
         "format": "date-time"
        },
        {
         "type": "string",
         "pattern": "^[0-9]{1,10}$"
        }
       ],
       "description": "ISO 8601 time or Unix seconds"
      },
      "description": ""
     },
     {
      "name": "until",
      "in": "query",
      "required": false,
      "schema": {
       "anyOf": [
        {
         "type": "string",
         "format": "date-time"
        },
        {
         "type": "string",
         "pattern": "^[0-9]{1,10}$"
        }
       ],
       "description": "ISO 8601 time or Unix seconds"
      },
      "description": ""
     },
     {
      "name": "limit",
      "in": "query",
      "required": false,
      "schema": {
       "type": "integer",
       "minimum": 1,
       "maximum": 1000
      },
      "description": ""
     },
     {
      "name": "offset",
      "in": "query",
      "required": false,
      "schema": {
       "type": "integer",
       "minimum": 0,
       "maximum": 2147483647
      },
      "description": ""
     }
    ],
    "responses": {
     "200": {
      "description": "Suppressions",
      "content": {
       "application/json": {
        "schema": {
         "type": "object",
         "required": [
          "suppressions"
         ],
         "properties": {
          "suppressions": {
           "type": "array",
           "items": {
            "$ref": "#/components/schemas/Suppression"
           }
          },
          "next_offset": {
           "type": [
            "integer",
            "null"
           ]
          }
         }
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/BadRequest"
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "403": {
      "$ref": "#/components/responses/Forbidden"
     },
     "429": {
      "$ref": "#/components/responses/TooManyRequests"
     }
    }
   },
   "post": {
    "operationId": "addSuppression",
    "requestBody": {
     "required": true,
     "content": {
      "application/json": {
       "schema": {
        "type": "object",
        "required": [
         "address"
        ],
        "properties": {
         "address": {
          "type": "string",
          "pattern": "^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,30}@[A-Za-z0-9-]{1,20}(\\.[A-Za-z0-9-]{1,20}){1,3}$"
         },
         "reason": {
          "type": "string",
          "enum": [
           "bounce",
           "complaint",
           "unsubscribe",
           "manual"
          ]
         },
         "scope": {
          "type": "string",
          "enum": [
           "transactional",
           "marketing",
           "all"
          ]
         }
        }
       }
      }
     }
    },
    "responses": {
     "201": {
      "description": "Added",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Suppression"
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/BadRequest"
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "403": {
      "$ref": "#/components/responses/Forbidden"
     },
     "429": {
      "$ref": "#/components/responses/TooManyRequests"
     },
     "422": {
      "description": "Invalid address",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     }
    }
   }
  },
  "/v1/suppressions/{address}": {
   "get": {
    "operationId": "getSuppression",
    "parameters": [
     {
      "name": "address",
      "in": "path",
      "required": true,
      "schema": {
       "type": "string"
      }
     }
    ],
    "responses": {
     "200": {
      "description": "Suppression",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Suppression"
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/BadRequest"
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "403": {
      "$ref": "#/components/responses/Forbidden"
     },
     "429": {
      "$ref": "#/components/responses/TooManyRequests"
     },
     "404": {
      "description": "Not suppressed",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     }
    }
   },
   "delete": {
    "operationId": "removeSuppression",
    "parameters": [
     {
      "name": "address",
      "in": "path",
      "required": true,
      "schema": {
       "type": "string"
      }
     }
    ],
    "responses": {
     "204": {
      "description": "Released"
     },
     "400": {
      "$ref": "#/components/responses/BadRequest"
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "403": {
      "$ref": "#/components/responses/Forbidden"
     },
     "429": {
      "$ref": "#/components/responses/TooManyRequests"
     },
     "404": {
      "description": "Not suppressed",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     }
    }
   }
  }
 }
}
"""#
}
