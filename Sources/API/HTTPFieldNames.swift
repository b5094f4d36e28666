import HTTPTypes

/// The response fields the API names itself, made once.
extension HTTPField.Name {
    static let requestID = HTTPField.Name("X-Request-Id")!
    static let amazonRequestID = HTTPField.Name("x-amzn-RequestId")!
    static let amazonErrorType = HTTPField.Name("x-amzn-ErrorType")!
    static let messageID = HTTPField.Name("X-Message-Id")!
    static let nextCursor = HTTPField.Name("X-Next-Cursor")!
    static let referrerPolicy = HTTPField.Name("Referrer-Policy")!
}

extension HTTPField.Name {
    static let xFrameOptions = HTTPField.Name("X-Frame-Options")!
}
