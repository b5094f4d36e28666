import Logging
import NIOPosix
import NIOCore
import NIOSSL
import NIOTLS
import SMTPCore
import Spool
import Store

/// Thin NIO glue around `InboundSessionStateMachine`: frames bytes, performs
/// the machine's actions, runs the deadlines.
///
/// Event-loop confined. Pipelined input is processed strictly in order:
/// while the machine waits for the spool or a password check, later bytes
/// stay buffered (and reading stops once the buffer is large), so replies
/// always come back in command order.
public final class InboundSessionHandler: ChannelDuplexHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = Never
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    /// What a session needs from the server around it.
    public struct Environment: Sendable {
        public var settings: InboundSettings
        /// Where accepted messages go: the one intake every door shares.
        public var intake: Intake
        public var verifier: any CredentialVerifier
        public var tlsContext: NIOSSLContext?
        /// Total time allowed to receive one command line (RFC 5321
        /// §4.5.3.2.7 asks for at least 5 minutes). A deadline, not an idle
        /// timer: a client trickling one byte a second cannot stretch it.
        public var commandTimeout: TimeAmount
        /// Total time allowed for the message after 354.
        public var dataTimeout: TimeAmount
        public var authenticationThrottle: AuthenticationThrottle
        /// Records reports sent to the bounce domain (`settings.returnPath`), on `feedbackPool`.
        public var feedback: FeedbackRecorder?
        /// Parsing and classifying reports: its own threads, so that a flood
        /// of reports cannot hold up AUTH or signing.
        public var feedbackPool: NIOThreadPool?
        public var logger: Logger

        public init(settings: InboundSettings, intake: Intake, verifier: any CredentialVerifier,
                    tlsContext: NIOSSLContext?, commandTimeout: TimeAmount = .minutes(5),
                    dataTimeout: TimeAmount = .minutes(10),
                    authenticationThrottle: AuthenticationThrottle = AuthenticationThrottle(maximumFailures: 10, window: .minutes(5)),
                    logger: Logger) {
            self.settings = settings
            self.intake = intake
            self.verifier = verifier
            self.tlsContext = tlsContext
            self.commandTimeout = commandTimeout
            self.dataTimeout = dataTimeout
            self.authenticationThrottle = authenticationThrottle
            self.logger = logger
        }
    }

    /// Stop reading from the socket while this much unprocessed input waits.
    static let highWaterMark = 64 * 1024

    private let environment: Environment
    private let clientAddress: String
    private var machine: InboundSessionStateMachine
    private let logger: Logger
    private let sessionID: String
    private var input = ByteBuffer()
    private var lineReader: CommandLineReader
    private var dataReader: DataReader?
    /// When the current wait must end, and for which input.
    private var deadlineAt: NIODeadline?
    private var deadlineMode: InboundSessionStateMachine.InputMode?
    private var timer: Scheduled<Void>?
    private var timerDue: NIODeadline?
    private var readHeld = false
    private var readPending = false
    private var tlsDescription: String?
    private var processing = false

    public init(environment: Environment, clientAddress: String, trusted: Bool, implicitTLS: Bool, sessionID: String) {
        self.environment = environment
        self.clientAddress = clientAddress
        self.machine = InboundSessionStateMachine(
            settings: environment.settings, trusted: trusted, tlsActive: implicitTLS)
        self.lineReader = CommandLineReader(maximumLineLength: environment.settings.maximumCommandLineLength)
        // Metadata goes with each log call: setting it on a Logger per
        // connection costs more than the few lines a session logs.
        self.logger = environment.logger
        self.sessionID = sessionID
    }

    public func channelActive(context: ChannelHandlerContext) {
        write(machine.greeting(), context: context)
        context.flush()
        updateDeadline(context: context)
        context.fireChannelActive()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        cancelDeadline()
        stopTimer()
        context.fireChannelInactive()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        if machine.inputMode == .discard { return }
        input.writeBuffer(&bytes)
        process(context: context)
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let tlsEvent = event as? TLSUserEvent, case .handshakeCompleted = tlsEvent {
            if let version = try? context.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self).tlsVersion {
                tlsDescription = "using " + Self.name(of: version)
            } else {
                tlsDescription = "using TLS"
            }
            machine.tlsEstablished()
            process(context: context)
        } else if event is DrainRequest {
            perform(machine.shutdownRequested(), context: context)
            context.flush()
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // TLS failures, resets: nothing to answer; the session simply ends.
        log(.debug, "session error", ["error": "\(error)"])
        context.close(promise: nil)
    }

    public func read(context: ChannelHandlerContext) {
        if readHeld {
            readPending = true
        } else {
            context.read()
        }
    }

    // MARK: Processing

    private func process(context: ChannelHandlerContext) {
        // Re-entrancy guard: actions can complete synchronously (EmbeddedChannel).
        guard !processing else { return }
        processing = true
        defer { processing = false }
        loop: while true {
            switch machine.inputMode {
            case .discard:
                input.clear()
                break loop
            case .paused:
                break loop
            case .command:
                let frame = lineReader.read(&input)
                if frame == .incomplete { break loop }
                cancelDeadline()
                perform(machine.receiveLine(frame), context: context)
            case .data:
                var reader = dataReader ?? DataReader(maximumMessageSize: environment.settings.maximumMessageSize,
                                                      maximumLineLength: environment.settings.maximumTextLineLength)
                let result = reader.read(&input)
                guard case .complete(let violation) = result else {
                    dataReader = reader
                    break loop
                }
                cancelDeadline()
                let content = reader.takeContent()
                dataReader = nil
                perform(machine.dataFinished(violation: violation, content: content), context: context)
            }
        }
        if input.readableBytes == 0 {
            input.clear()
        } else if input.readerIndex > 16 * 1024 {
            input.discardReadBytes()
        }
        context.flush()
        updateDeadline(context: context)
        updateReading(context: context)
    }

    private func perform(_ action: InboundSessionStateMachine.Action, context: ChannelHandlerContext) {
        switch action {
        case .none:
            break
        case .reply(let reply), .beginData(let reply):
            write(reply, context: context)
        case .replyAndClose(let reply), .replyAndShutDown(let reply):
            write(reply, context: context)
            if case .replyAndShutDown = action { write(.serviceShuttingDown, context: context) }
            input.clear()
            context.writeAndFlush(wrapOutboundOut(ByteBuffer()), promise: nil)
            context.close(promise: nil)
        case .startTLS(let reply):
            write(reply, context: context)
            context.flush()
            // RFC 3207 §4.2: anything the client pipelined after STARTTLS was
            // sent in plaintext and must not be acted on.
            input.clear()
            lineReader.reset()
            guard let tlsContext = environment.tlsContext else {
                context.close(promise: nil)
                return
            }
            do {
                try context.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tlsContext), position: .first)
            } catch {
                context.close(promise: nil)
            }
        case .verifyCredentials(let username, let password):
            let throttle = environment.authenticationThrottle
            switch throttle.begin(clientAddress) {
            case .proceed:
                break
            case .throttled:
                log(.notice, "authentication throttled")
                perform(machine.credentialsThrottled(), context: context)
                return
            case .busy:
                log(.notice, "authentication refused: too many checks running")
                perform(machine.credentialsBusy(), context: context)
                return
            }
            let future = environment.verifier.verify(username: username, password: password, eventLoop: context.eventLoop)
            future.assumeIsolated().whenComplete { [self] result in
                switch (try? result.get()) ?? .unavailable {
                case .accepted(let account):
                    throttle.end(clientAddress, succeeded: true)
                    log(.info, "authenticated", ["account": "\(account.name)"])
                    perform(machine.credentialsVerified(account), context: context)
                case .refused:
                    throttle.end(clientAddress, succeeded: false)
                    log(.notice, "authentication failed")
                    perform(machine.credentialsVerified(nil), context: context)
                case .unavailable:
                    // The store's trouble, not the client's: not counted against it.
                    throttle.end(clientAddress, succeeded: true)
                    log(.warning, "authentication not checked: the store did not answer")
                    perform(machine.credentialsBusy(), context: context)
                }
                process(context: context)
            }
        case .enqueue(let transaction, let content):
            enqueue(transaction, content: content, context: context)
        case .recordFeedback(let transaction, let content):
            recordFeedback(transaction, content: content, context: context)
        }
    }

    private func enqueue(_ transaction: InboundSessionStateMachine.Transaction, content: [UInt8], context: ChannelHandlerContext) {
        let recipients = transaction.recipients.map(\.description)
        let sender = transaction.sender.mailbox?.description ?? ""
        guard let principal = RelayPolicy.principal(machine.authority) else {
            // Unreachable: RCPT refuses anonymous clients. Refused rather than trusted.
            perform(machine.spoolFinished(.failure(.refused(RelayPolicy.relayDenied))), context: context)
            return
        }
        let origin = SMTPOrigin(clientAddress: clientAddress, heloName: machine.heloName, extended: machine.isExtendedSession,
                                tls: machine.tlsActive, tlsDescription: tlsDescription)
        let submission = Submission(id: Intake.newMessageID(), door: .smtp, principal: principal, sender: sender,
                                    recipients: recipients, smtpUTF8: transaction.parameters.smtpUTF8, content: content,
                                    origin: .smtp(origin))
        let size = content.count
        let promise = context.eventLoop.makePromise(of: Result<MessageID, IntakeRefusal>.self)
        environment.intake.submit(submission) { promise.succeed($0) }
        promise.futureResult.assumeIsolated().whenSuccess { [self] result in
            let outcome: Result<String, InboundSessionStateMachine.SpoolFailure>
            switch result {
            case .success(let id):
                log(.info, "queued", ["id": "\(id)", "from": "<\(sender)>", "recipients": "\(recipients.count)", "size": "\(size)"])
                outcome = .success(id.rawValue)
            case .failure(.insufficientStorage):
                log(.error, "message refused: spool storage full")
                outcome = .failure(.insufficientStorage)
            case .failure(.spoolUnavailable):
                log(.error, "message refused: spool unavailable")
                outcome = .failure(.unavailable)
            case .failure(let refusal):
                log(.notice, "message refused", ["from": "<\(sender)>", "reply": "\(refusal.smtpReply)",
                                                 "account": "\(machine.authenticatedAccount?.name ?? "-")"])
                outcome = .failure(.refused(refusal.smtpReply))
            }
            perform(machine.spoolFinished(outcome), context: context)
            process(context: context)
        }
    }

    private func recordFeedback(_ transaction: InboundSessionStateMachine.Transaction, content: [UInt8], context: ChannelHandlerContext) {
        let recipients = transaction.recipients.map(\.description)
        guard let recorder = environment.feedback, let pool = environment.feedbackPool else {
            perform(machine.feedbackFinished(Reply(451, EnhancedStatusCode(4, 3, 0), "Reports cannot be recorded now")), context: context)
            process(context: context)
            return
        }
        pool.runIfActive(eventLoop: context.eventLoop) {
            try recorder.record(recipients: recipients, content: content)
        }.assumeIsolated().whenComplete { [self] result in
            let reply: Reply
            switch result {
            case .success(.recorded(let count)):
                log(.info, "report recorded", ["recipients": "\(count)"])
                reply = Reply(250, EnhancedStatusCode(2, 0, 0), "Report recorded")
            case .success(.unknownMessage):
                // A valid address whose message is gone (retention): nothing to do, and nothing to bounce.
                reply = Reply(250, EnhancedStatusCode(2, 0, 0), "Report about no message on record; discarded")
            case .success(.unreadable):
                reply = Reply(550, EnhancedStatusCode(5, 6, 0), "Not a delivery status notification or feedback report")
            case .failure(let error):
                log(.error, "report not recorded", ["error": "\(error)"])
                reply = Reply(451, EnhancedStatusCode(4, 3, 0), "Local error in processing, try again later")
            }
            perform(machine.feedbackFinished(reply), context: context)
            process(context: context)
        }
    }

    static func name(of version: TLSVersion) -> String {
        switch version {
        case .tlsv1: return "TLSv1.0"
        case .tlsv11: return "TLSv1.1"
        case .tlsv12: return "TLSv1.2"
        case .tlsv13: return "TLSv1.3"
        }
    }

    private func write(_ reply: Reply, context: ChannelHandlerContext) {
        var buffer = context.channel.allocator.buffer(capacity: 64)
        reply.write(to: &buffer)
        context.write(wrapOutboundOut(buffer), promise: nil)
    }

    private func log(_ level: Logger.Level, _ message: Logger.Message, _ metadata: @autoclosure () -> Logger.Metadata = [:]) {
        guard logger.logLevel <= level else { return }
        var all = metadata()
        all["session"] = "\(sessionID)"
        all["client"] = "\(clientAddress)"
        logger.log(level: level, message, metadata: all)
    }

    // MARK: Deadlines and back-pressure

    /// Arms the deadline for what the session now waits for. The timer is
    /// lazy: moving a deadline only stores the new time, and the scheduled
    /// task, when it fires early, re-arms itself for the stored time. That
    /// keeps timer-heap work off the per-command path.
    private func updateDeadline(context: ChannelHandlerContext) {
        let mode = machine.inputMode
        guard mode == .command || mode == .data else {
            cancelDeadline()
            return
        }
        if deadlineAt != nil && deadlineMode == mode { return }
        let timeout = mode == .data ? environment.dataTimeout : environment.commandTimeout
        deadlineMode = mode
        let due = context.eventLoop.now + timeout
        deadlineAt = due
        if let armed = timerDue, armed <= due { return }
        scheduleTimer(at: due, context: context)
    }

    private func scheduleTimer(at due: NIODeadline, context: ChannelHandlerContext) {
        timer?.cancel()
        timerDue = due
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: due) { [self] in
            timer = nil
            timerDue = nil
            guard let deadlineAt else { return }
            if deadlineAt > context.eventLoop.now {
                scheduleTimer(at: deadlineAt, context: context)
                return
            }
            let mode = deadlineMode.map { "\($0)" } ?? "unknown"
            log(.notice, "session timed out", ["phase": "\(mode)"])
            perform(machine.timedOut(), context: context)
        }
    }

    private func cancelDeadline() {
        deadlineAt = nil
        deadlineMode = nil
    }

    private func stopTimer() {
        timer?.cancel()
        timer = nil
        timerDue = nil
    }

    private func updateReading(context: ChannelHandlerContext) {
        let hold = machine.inputMode == .paused && input.readableBytes >= Self.highWaterMark
        if hold != readHeld {
            readHeld = hold
            if !hold && readPending {
                readPending = false
                context.read()
            }
        }
    }
}

import struct Foundation.Date
