import Foundation
import Hummingbird
import NIOCore

/// Which API a request belongs to: each reports errors in its own shape.
enum APIFlavor: Sendable {
    /// `{"error": {"code", "message"}}`
    case native
    /// `x-amzn-ErrorType` and `{"message"}`, so that botocore raises the modelled exception.
    case ses
    /// `{"errors": [{"message", "field", "help"}]}`
    case sendGrid

    init(path: String) {
        if path.hasPrefix("/v2/") { self = .ses }
        else if path.hasPrefix("/v3/") { self = .sendGrid }
        else { self = .native }
    }
}

/// An error answered to the client. `code` is the native API's code;
/// `sesType` the SES exception botocore should raise.
struct APIError: Error, Sendable {
    var status: HTTPResponse.Status
    var code: String
    var message: String
    var sesType: String
    /// The request field at fault (SendGrid's `field`).
    var field: String?
    var retryAfter: Int?
    /// Part of the request took effect despite the error (some messages were stored): it may not be replayed.
    var partlyDone = false

    init(_ status: HTTPResponse.Status, _ code: String, _ message: String, ses: String? = nil, field: String? = nil,
         retryAfter: Int? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.retryAfter = retryAfter
        sesType = ses ?? APIError.defaultSESType(status)
    }

    static func defaultSESType(_ status: HTTPResponse.Status) -> String {
        switch status.code {
        case 404: return "NotFoundException"
        case 429: return "TooManyRequestsException"
        case 401, 403: return "UnrecognizedClientException"
        case 500...: return "InternalFailure"
        default: return "BadRequestException"
        }
    }

    static func badRequest(_ message: String, field: String? = nil) -> APIError {
        APIError(.badRequest, "bad_request", message, field: field)
    }

    static func invalid(_ message: String, field: String? = nil) -> APIError {
        APIError(.unprocessableContent, "invalid_message", message, ses: "MessageRejected", field: field)
    }

    static func notFound(_ what: String) -> APIError {
        APIError(.notFound, "not_found", "\(what) not found")
    }

    static let unauthorized = APIError(.unauthorized, "unauthorized", "missing or invalid credentials",
                                       ses: "UnrecognizedClientException")
    static let forbidden = APIError(.forbidden, "forbidden", "this key's scope does not allow this request",
                                    ses: "AccessDeniedException")

    func response(flavor: APIFlavor, requestID: String) -> Response {
        var headers: HTTPFields = [.contentType: "application/json", .requestID: requestID]
        if let retryAfter { headers[.retryAfter] = String(retryAfter) }
        let body: [String: Any]
        switch flavor {
        case .native:
            body = ["error": ["code": code, "message": message, "request_id": requestID]]
        case .ses:
            headers[.amazonErrorType] = sesType
            headers[.amazonRequestID] = requestID
            // SES answers 400 for most modelled errors (MessageRejected included).
            body = ["message": message]
        case .sendGrid:
            var error: [String: Any] = ["message": message]
            error["field"] = field ?? NSNull()
            error["help"] = NSNull()
            body = ["errors": [error], "id": requestID]
        }
        // SES and SendGrid answer 400 for invalid content; only the native API uses 422.
        let status = flavor != .native && status == .unprocessableContent ? .badRequest : status
        let data = (try? JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])) ?? Data("{}".utf8)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

/// Turns every error into the JSON error shape of the request's API, the
/// router's own 404/405 and body-size errors included, and names the request
/// id in every response.
struct ErrorMiddleware: RouterMiddleware {
    typealias Context = APIRequestContext
    let routes: RouteTable
    /// Signatures of failed requests are forgotten here, so that a retry is not taken for a replay.
    let replays: SignatureReplayMemory?

    func handle(_ request: Request, context: APIRequestContext,
                next: (Request, APIRequestContext) async throws -> Response) async throws -> Response {
        let flavor = APIFlavor(path: request.uri.path)
        do {
            var response = try await next(request, context)
            replays?.finish(request: context.id, failed: response.status.code >= 400)
            response.headers[.requestID] = context.id
            if flavor == .ses { response.headers[.amazonRequestID] = context.id }
            return response
        } catch {
            replays?.finish(request: context.id, failed: !((error as? APIError)?.partlyDone ?? false))
            return respond(to: error, request: request, context: context, flavor: flavor)
        }
    }

    func respond(to error: any Error, request: Request, context: APIRequestContext, flavor: APIFlavor) -> Response {
        do {
            throw error
        } catch let error as APIError {
            if error.status.code >= 500 {
                context.logger.error("request failed", metadata: ["code": "\(error.code)", "error": "\(error.message)"])
            }
            return error.response(flavor: flavor, requestID: context.id)
        } catch let error as HTTPError where error.status == .notFound && !routes.methods(for: request.uri.path).isEmpty {
            let allowed = routes.methods(for: request.uri.path).map(\.rawValue)
            var response = APIError(.methodNotAllowed, "method_not_allowed", "\(request.method.rawValue) is not allowed here")
                .response(flavor: flavor, requestID: context.id)
            response.headers[.allow] = allowed.joined(separator: ", ")
            return response
        } catch let error as HTTPError {
            let code: String
            switch error.status.code {
            case 404: code = "not_found"
            case 405: code = "method_not_allowed"
            case 413: code = "payload_too_large"
            default: code = "http_\(error.status.code)"
            }
            let message = error.body ?? error.status.reasonPhrase
            return APIError(error.status, code, message).response(flavor: flavor, requestID: context.id)
        } catch {
            context.logger.error("request failed", metadata: ["error": "\(error)"])
            return APIError(.internalServerError, "internal", "internal error")
                .response(flavor: flavor, requestID: context.id)
        }
    }
}
